"""The analyst console's routes (DESIGN §11): parse, authorize, call `views` / `Cases` / the assistant, render.

Pages are server-rendered Jinja2; htmx swaps fragments (queue refresh, actions, timeline, feedback) and a small
script streams the assistant's answer. Every POST carries the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import escape
from soctriage.agents.assistant import MAX_QUESTION_CHARS, ChatAnswer
from soctriage.agents.feedback import FeedbackError, give_feedback
from soctriage.agents.run import DecisionRefused
from soctriage.service.api import chat as chat_api
from soctriage.service.api.deps import cases_of
from soctriage.service.cases import (
    ConflictError,
    DecisionRequest,
    ForbiddenError,
    NotFoundError,
)
from soctriage.service.console import views
from soctriage.service.console.access import (
    BadRequest,
    FormDep,
    SignInRequired,
    User,
    UserDep,
    Visitor,
    VisitorDep,
    signer,
)
from soctriage.service.console.session import COOKIE
from soctriage.service.domain import Case, utc_now
from soctriage.service.reports import (
    EvidenceParams,
    ReportFormat,
    evidence_from_store,
    parse_day,
    render_report,
)
from soctriage.service.reports.render import MEDIA_TYPES
from soctriage.service.store.case_query import CursorError
from soctriage.service.store.transcript import export_transcript
from starlette.types import Scope

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"


def _asset_version() -> str:
    """A digest of every static file: part of each asset URL, so browsers may cache assets for good."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STATIC).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


ASSET_VERSION = _asset_version()


class StaticAssets(StaticFiles):
    """The package's static files; a URL with the asset version (`?v=`) never changes, so it is cached for a
    year, and a plain URL (Swagger UI's) is revalidated."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        versioned = b"v=" + ASSET_VERSION.encode() in scope.get("query_string", b"")
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if versioned else "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def static_url(name: str) -> str:
    return f"/static/{name}?v={ASSET_VERSION}"


templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters.update(
    when=views.when, cited=views.cited, summary=views.entry_summary, payload=views.payload_json
)
templates.env.globals.update(
    STATUSES=views.STATUSES, DISPOSITIONS=views.DISPOSITIONS, SEVERITIES=views.SEVERITIES, static=static_url
)
CaseId = Annotated[str, PathParam(max_length=64)]
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
# The evidence report is its own self-contained document (inline styles, no scripts), framed by the console.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


def secure(request: Request, response: Response, visitor: Visitor | None, csp: str = CSP) -> Response:
    """Security headers on every console response, and the session cookie when it is new."""
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    if visitor is not None and visitor.issue_cookie:
        response.set_cookie(
            COOKIE,
            signer(request).dump(visitor.session),
            max_age=signer(request).ttl_s,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


def render(
    request: Request,
    visitor: Visitor,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    values = {"visitor": visitor, "user": visitor.principal, "csrf": visitor.csrf, **(context or {})}
    response = templates.TemplateResponse(request, template, values, status_code=status, headers=headers)
    return secure(request, response, visitor)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def _visible(request: Request, who: User, case_id: str) -> Case:
    try:
        return await cases_of(request).visible(who.principal, case_id)
    except NotFoundError as exc:
        raise BadRequest(404, str(exc)) from exc


# ---- sign-in ------------------------------------------------------------------------------------------------


def _local(target: str | None) -> str:
    """Only a path of this console is a place to go after sign-in (never another site)."""
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login")
async def login_page(request: Request, visitor: VisitorDep, next: str = "/") -> Response:
    if visitor.principal is not None:
        return secure(request, RedirectResponse(_local(next), status_code=303), visitor)
    return render(request, visitor, "login.html", {"next": _local(next)})


@router.post("/login")
async def login(request: Request, visitor: VisitorDep, fields: FormDep) -> Response:
    token = fields.get("api_key", "").strip()
    target = _local(fields.get("next"))
    who = await asyncio.to_thread(request.app.state.authenticator.authenticate, token) if token else None
    if who is None:
        error = "Enter an API key." if not token else "That API key is unknown or revoked."
        return render(request, visitor, "login.html", {"next": target, "error": error}, status=401)
    if not who.can("viewer"):
        error = f"A key with role {who.role} cannot read cases."
        return render(request, visitor, "login.html", {"next": target, "error": error}, status=403)
    signed_in = Visitor(signer(request).new(who.key_id), who, visitor.csrf, issue_cookie=True)
    return secure(request, RedirectResponse(target, status_code=303), signed_in)


@router.post("/logout")
async def logout(request: Request, visitor: VisitorDep, fields: FormDep) -> Response:
    signed_out = Visitor(signer(request).new(None), None, visitor.csrf, issue_cookie=True)
    return secure(request, RedirectResponse("/login", status_code=303), signed_out)


# ---- the queue ----------------------------------------------------------------------------------------------


def _queue_context(request: Request, view: views.QueueView, problems: list[str]) -> dict[str, Any]:
    wanted = view.wanted
    params = {
        "q": wanted.text or "",
        "status": wanted.status or "",
        "disposition": wanted.disposition or "",
        "severity": wanted.severity or "",
    }
    kept = {k: v for k, v in params.items() if v}
    return {
        "view": view,
        "params": params,
        "problems": problems,
        "query": urlencode(kept),
        "next_url": f"/?{urlencode({**kept, 'cursor': view.page.next_cursor})}"
        if view.page.next_cursor
        else None,
        "status_url": lambda status: (
            "/?"
            + urlencode(
                {**kept, "status": status} if status else {k: v for k, v in kept.items() if k != "status"}
            )
        ),
    }


async def _queue(request: Request, who: User) -> tuple[views.QueueView, list[str]]:
    wanted, problems = views.filter_from(dict(request.query_params))
    cursor = request.query_params.get("cursor") or None
    store = cases_of(request).store
    try:
        view = await asyncio.to_thread(views.queue_view, store, who.principal.tenant, wanted, cursor)
    except CursorError as exc:
        problems.append(str(exc))
        view = await asyncio.to_thread(views.queue_view, store, who.principal.tenant, wanted, None)
    return view, problems


@router.get("/")
async def queue_page(request: Request, who: UserDep) -> Response:
    view, problems = await _queue(request, who)
    return render(request, who.visitor, "queue.html", _queue_context(request, view, problems))


@router.get("/queue/rows")
async def queue_rows(request: Request, who: UserDep, stamp: str = "") -> Response:
    """The queue's live part; 204 (htmx keeps what it shows) while nothing of the tenant changed."""
    current = await asyncio.to_thread(views.queue_stamp, cases_of(request).store, who.principal.tenant)
    if stamp and stamp == current:
        return secure(request, Response(status_code=204), who.visitor)
    view, problems = await _queue(request, who)
    return render(request, who.visitor, "_queue_live.html", _queue_context(request, view, problems))


# ---- a case ------------------------------------------------------------------------------------------------


@router.get("/cases/{case_id}")
async def case_page(request: Request, who: UserDep, case_id: CaseId) -> Response:
    case = await _visible(request, who, case_id)
    view = await views.case_view(cases_of(request).triager, case)
    return render(request, who.visitor, "case.html", {"v": view, "max_question": MAX_QUESTION_CHARS})


@router.get("/cases/{case_id}/timeline")
async def case_timeline(request: Request, who: UserDep, case_id: CaseId) -> Response:
    case = await _visible(request, who, case_id)
    view = await views.case_view(cases_of(request).triager, case)
    return render(request, who.visitor, "_timeline.html", {"v": view})


@router.get("/cases/{case_id}/integrity")
async def case_integrity(request: Request, who: UserDep, case_id: CaseId) -> Response:
    case = await _visible(request, who, case_id)
    view = await views.case_view(cases_of(request).triager, case)
    return render(request, who.visitor, "_integrity.html", {"v": view})


async def _actions_fragment(
    request: Request,
    who: User,
    case_id: str,
    flash: str | None = None,
    error: str | None = None,
    waiting: str | None = None,
    status: int = 200,
) -> Response:
    case = await _visible(request, who, case_id)
    view = await views.case_view(cases_of(request).triager, case)
    if waiting is not None:
        row = next((a for a in view.actions if a.view.id == waiting), None)
        if row is None or not row.pending:
            flash, waiting = views.decision_outcome(view, waiting), None
        else:
            flash = flash or f"{waiting}: the decision is queued; a worker resumes the case shortly."
    context = {"v": view, "flash": flash, "error": error, "waiting": waiting, "oob": True}
    return render(
        request,
        who.visitor,
        "_actions.html",
        context,
        status=status,
        headers={"HX-Trigger": "ledger-changed"} if flash and not waiting else None,
    )


@router.get("/cases/{case_id}/actions")
async def case_actions(request: Request, who: UserDep, case_id: CaseId, wait: str | None = None) -> Response:
    return await _actions_fragment(request, who, case_id, waiting=wait)


@router.post("/cases/{case_id}/actions/{action_id}/decision")
async def decide(
    request: Request,
    who: UserDep,
    fields: FormDep,
    case_id: CaseId,
    action_id: Annotated[str, PathParam(max_length=32)],
) -> Response:
    choice = fields.get("decision")
    if choice not in ("approve", "reject"):
        return await _actions_fragment(
            request, who, case_id, error="decision: choose approve or reject", status=422
        )
    reason = fields.get("reason", "").strip()[:4000] or None
    try:
        await cases_of(request).decide(
            who.principal, case_id, action_id, DecisionRequest(approve=choice == "approve", reason=reason)
        )
    except (ForbiddenError, ConflictError, DecisionRefused) as exc:
        status = 403 if isinstance(exc, ForbiddenError) else 409
        response = await _actions_fragment(request, who, case_id, error=str(exc), status=status)
        response.headers["HX-Trigger"] = "ledger-changed"  # a refusal is a ledger entry too
        return response
    if not is_htmx(request):
        return secure(
            request, RedirectResponse(f"/cases/{quote(case_id)}#actions", status_code=303), who.visitor
        )
    # Applied (or queued for a worker), the fragment reports the outcome once the action is no longer pending,
    # and polls until then.
    return await _actions_fragment(request, who, case_id, waiting=action_id)


@router.post("/cases/{case_id}/feedback")
async def feedback(request: Request, who: UserDep, fields: FormDep, case_id: CaseId) -> Response:
    case = await _visible(request, who, case_id)
    context: dict[str, Any] = {"case": case}
    disposition = fields.get("disposition", "")
    if not who.principal.can("analyst"):
        context["error"] = f"role {who.principal.role} may not record feedback (analyst or above needed)"
        return render(request, who.visitor, "_feedback.html", context, status=403)
    if disposition not in views.DISPOSITIONS:
        context["error"] = f"disposition: choose one of {', '.join(views.DISPOSITIONS)}"
        return render(request, who.visitor, "_feedback.html", context, status=422)
    try:
        outcome = await asyncio.to_thread(
            give_feedback,
            cases_of(request).triager.deps,
            case_id,
            by=who.principal.name,
            disposition=disposition,
            reason_code=fields.get("reason_code", "").strip()[:100] or None,
            note=fields.get("note", "").strip()[:4000] or None,
            rule=fields.get("rule") == "on",
        )
    except FeedbackError as exc:
        context["error"] = str(exc)
        return render(request, who.visitor, "_feedback.html", context, status=422)
    context |= {"recorded": outcome.entry, "rule": outcome.learned.rule, "change": outcome.learned.change}
    return render(request, who.visitor, "_feedback.html", context, headers={"HX-Trigger": "ledger-changed"})


@router.post("/cases/{case_id}/chat")
async def chat(request: Request, who: UserDep, fields: FormDep, case_id: CaseId) -> Response:
    """The assistant's answer as server-sent events: `token` pieces, then `answer` with its HTML (citations
    linked to the timeline), or `error`."""
    await _visible(request, who, case_id)
    question = fields.get("question", "").strip()
    problem = None
    if not who.principal.can("analyst"):
        problem = f"role {who.principal.role} may not ask the assistant (analyst or above needed)"
    elif not question:
        problem = "question: type a question first"
    elif len(question) > MAX_QUESTION_CHARS:
        problem = f"question: longer than {MAX_QUESTION_CHARS} characters"
    cases = cases_of(request)

    async def stream() -> AsyncIterator[bytes]:
        if problem is not None:
            yield chat_api.sse({"detail": problem}, "error")
            return
        queue = chat_api.produce(cases.triager.assistant(), case_id, question, who.principal.name)
        async for event in chat_api.events(queue):
            if isinstance(event, str):
                yield chat_api.sse({"text": event}, "token")
            elif isinstance(event, ChatAnswer):
                html = str(views.cited(event.answer, event.answer_seq))
                yield chat_api.sse(
                    {
                        "html": html,
                        "answer_seq": event.answer_seq,
                        "citations": list(event.citations),
                        "proposals": [a.id for a in event.proposals],
                    },
                    "answer",
                )
            else:
                yield chat_api.sse({"detail": str(event)}, "error")

    response = StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
    return secure(request, response, who.visitor)


@router.get("/cases/{case_id}/raw")
async def raw_alert(request: Request, who: UserDep, case_id: CaseId) -> Response:
    """The alert exactly as received, as text: it is attacker-written, so never rendered as a page."""
    case = await _visible(request, who, case_id)
    alert = await asyncio.to_thread(cases_of(request).store.get_alert, case.alert_ids[0], case.tenant)
    if alert is None:
        raise NotFoundError(f"case {case_id}: its alert is not stored")
    response = PlainTextResponse(
        alert.raw, headers={"Content-Disposition": f'inline; filename="{case_id}-raw.txt"'}
    )
    return secure(request, response, who.visitor, csp="default-src 'none'; sandbox")


TRANSCRIPT_TYPES = {
    "jsonl": ("application/x-ndjson", "jsonl"),
    "md": ("text/markdown; charset=utf-8", "md"),
    "html": ("text/html; charset=utf-8", "html"),
    "pdf": ("application/pdf", "pdf"),
}


@router.get("/cases/{case_id}/transcript")
async def transcript(request: Request, who: UserDep, case_id: CaseId, format: str = "jsonl") -> Response:
    await _visible(request, who, case_id)
    if format not in TRANSCRIPT_TYPES:
        raise BadRequest(422, f"format {format!r}: choose one of {', '.join(TRANSCRIPT_TYPES)}")
    store = cases_of(request).store

    def build() -> bytes:
        if format == "pdf":
            from soctriage.service.reports.case_pdf import case_pdf

            return case_pdf(store, case_id)
        return export_transcript(store, case_id, format).encode()  # type: ignore[arg-type]

    media, ext = TRANSCRIPT_TYPES[format]
    response = Response(
        await asyncio.to_thread(build),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{case_id}-transcript.{ext}"'},
    )
    return secure(request, response, who.visitor, csp="default-src 'none'; sandbox")


# ---- evidence report ----------------------------------------------------------------------------------------


def _period(request: Request) -> tuple[dict[str, str], datetime | None, datetime | None, list[str]]:
    raw = {k: (request.query_params.get(k) or "").strip() for k in ("since", "until")}
    found: dict[str, datetime | None] = {}
    problems = []
    for name, text in raw.items():
        try:
            found[name] = parse_day(text, end=name == "until") if text else None
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            found[name] = None
    since, until = found["since"], found["until"]
    if since and until and since >= until:
        problems.append(f"since: {raw['since']} is not before until {raw['until']}")
    return raw, since, until, problems


@router.get("/reports/evidence")
async def report_page(request: Request, who: UserDep) -> Response:
    raw, _, _, problems = _period(request)
    query = urlencode({k: v for k, v in raw.items() if v})
    context = {"period": raw, "problems": problems, "query": query, "allowed": who.principal.can("analyst")}
    return render(request, who.visitor, "report.html", context)


@router.get("/reports/evidence/file")
async def report_file(request: Request, who: UserDep, format: str = "html") -> Response:
    if not who.principal.can("analyst"):
        raise BadRequest(403, f"role {who.principal.role} may not read the evidence report (analyst needed)")
    if format not in MEDIA_TYPES:
        raise BadRequest(422, f"format {format!r}: choose one of {', '.join(MEDIA_TYPES)}")
    _, since, until, problems = _period(request)
    if problems:
        raise BadRequest(422, "; ".join(problems))
    settings = request.app.state.settings
    params = EvidenceParams(
        generated_at=utc_now(),
        since=since,
        until=until,
        tenant=who.principal.tenant,
        notification_window_h=settings.notification_window_h,
    )
    store = cases_of(request).store
    fmt: ReportFormat = format  # type: ignore[assignment]
    body = await asyncio.to_thread(lambda: render_report(evidence_from_store(store, params), fmt))
    headers = {}
    if format != "html":
        headers["Content-Disposition"] = f'attachment; filename="evidence-{who.principal.tenant}.{format}"'
    response = Response(body, media_type=MEDIA_TYPES[format], headers=headers)
    return secure(request, response, who.visitor, csp=REPORT_CSP)


# ---- API docs, served from the package -----------------------------------------------------------------------


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title="soctriage API",
        swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
    )


def sign_in_redirect(request: Request, _: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    if is_htmx(request):
        response = HTMLResponse(
            f'<div class="flash error" role="alert">{escape(str(exc))}</div>',
            status_code=exc.status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    else:
        context = {"visitor": None, "user": None, "csrf": "", "status": exc.status, "message": str(exc)}
        response = templates.TemplateResponse(request, "error.html", context, status_code=exc.status)
    return secure(request, response, None)


ERROR_HANDLERS = {SignInRequired: sign_in_redirect, BadRequest: bad_request}
