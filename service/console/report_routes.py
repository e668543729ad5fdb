"""The console's evidence report page and the report file it frames (DESIGN §11): parse, authorize, call
`evidence_from_store`, render."""

from __future__ import annotations

import asyncio
from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from soctriage.service.api.deps import cases_of
from soctriage.service.console.access import BadRequest, UserDep
from soctriage.service.console.pages import REPORT_CSP, render, secure
from soctriage.service.domain import utc_now
from soctriage.service.reports import (
    EvidenceParams,
    ReportFormat,
    evidence_from_store,
    parse_day,
    render_report,
)
from soctriage.service.reports.render import MEDIA_TYPES

router = APIRouter(include_in_schema=False)


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
