"""The analyst console's routes (DESIGN §11): parse, authorize, call `views` / `Cases` / the assistant, render.

Pages are server-rendered Jinja2; htmx swaps fragments (queue refresh, actions, timeline, feedback) and a small
script streams the assistant's answer. Every POST carries the session's CSRF token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from soctriage.agents.assistant import MAX_QUESTION_CHARS, ChatAnswer
from soctriage.agents.feedback import FeedbackError, give_feedback
from soctriage.agents.lifecycle import NotDecidable
from soctriage.service.api import chat as chat_api
from soctriage.service.api.deps import cases_of
from soctriage.service.cases import ConflictError, DecisionRequest, ForbiddenError, NotFoundError
from soctriage.service.console import views
from soctriage.service.console.access import BadRequest, FormDep, User, UserDep, Visitor, VisitorDep, signer
from soctriage.service.console.pages import is_htmx, render, secure
from soctriage.service.domain import Case
from soctriage.service.store.case_query import CursorError
from soctriage.service.store.transcript import export_transcript

router = APIRouter(include_in_schema=False)


CaseId = Annotated[str, PathParam(max_length=64)]


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
    except (ForbiddenError, ConflictError, NotDecidable) as exc:
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
