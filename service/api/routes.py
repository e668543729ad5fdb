"""HTTP routes (DESIGN §8): parse, authorize, call `intake`/`cases`, render. No decisions here."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from soctriage.service import metrics
from soctriage.service.api.deps import FormatQuery, cases_of
from soctriage.service.api.security import Analyst, Operator, Viewer
from soctriage.service.cases import CaseView, DecisionRequest, DecisionResult
from soctriage.service.domain import Case, CaseStatus, Disposition, LedgerEntry
from soctriage.service.intake import IntakeReport, accept_alerts
from soctriage.service.store.case_query import MAX_SEARCH_CHARS, CaseFilter, CursorError
from sqlalchemy import text

router = APIRouter()

CaseId = Annotated[str, Path(max_length=64, description="case id, e.g. case-0123456789ab")]

_ALERTS_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"description": "one vendor alert object, or an array of them"}},
        "application/x-ndjson": {"schema": {"type": "string", "description": "one alert per line (JSONL)"}},
    },
}


@router.post(
    "/v1/alerts",
    status_code=202,
    response_model=IntakeReport,
    tags=["alerts"],
    openapi_extra={"requestBody": _ALERTS_BODY},
    responses={413: {"description": "body too large"}, 422: {"description": "no record could be accepted"}},
)
async def post_alerts(
    request: Request,
    who: Analyst,
    fmt: FormatQuery = "auto",
) -> IntakeReport | JSONResponse:
    """Accept one alert, an array of alerts, or JSONL. Each new alert opens a case and queues its triage in one
    transaction; a re-delivered alert (same vendor alert id) returns its existing case. Rejected records are
    quarantined and listed with the line and field that is wrong."""
    settings = request.app.state.settings
    data = await _body_within(request, settings.max_request_bytes)
    cases = cases_of(request)
    report = await asyncio.to_thread(
        accept_alerts,
        cases.store,
        cases.queue,
        data,
        fmt,
        who.tenant,
        settings.max_record_bytes,
        cases.triager.grouping,
    )
    if not report.accepted:
        return JSONResponse(
            status_code=422,
            content={"detail": "no alert could be accepted", **report.model_dump(mode="json")},
        )
    return report


async def _body_within(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit`: a chunked body declares no length,
    and reading all of it first would let a client make the server hold any amount."""
    too_big = HTTPException(413, f"request body over {limit} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


@router.get(
    "/v1/cases",
    response_model=list[Case],
    tags=["cases"],
    responses={
        200: {
            "headers": {
                "Link": {"description": 'the next page, `<...>; rel="next"`, when there is one'},
                "X-Next-Cursor": {"description": "the cursor of the next page, when there is one"},
            }
        }
    },
)
async def list_cases(
    request: Request,
    response: Response,
    who: Viewer,
    status: Annotated[CaseStatus | None, Query(description="only cases in this status")] = None,
    disposition: Annotated[Disposition | None, Query(description="only cases with this verdict")] = None,
    severity: Annotated[
        str | None, Query(max_length=20, description="severity label (the verdict's, else the vendor's)")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=MAX_SEARCH_CHARS, description="words in the title, host or user; a case id"),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=400, description="X-Next-Cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Case]:
    """Your tenant's cases, newest first, a page at a time: a next page's cursor comes in the `X-Next-Cursor`
    and `Link` headers."""
    wanted = CaseFilter(status=status, disposition=disposition, severity=severity, text=q)
    try:
        page = await cases_of(request).page(who, wanted, limit, cursor)
    except CursorError as exc:
        raise HTTPException(422, {"field": "cursor", "error": str(exc)}) from exc
    if page.next_cursor:
        following = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["X-Next-Cursor"] = page.next_cursor
        response.headers["Link"] = f'<{following}>; rel="next"'
    return [row.case for row in page.rows]


@router.get("/v1/cases/{case_id}", response_model=CaseView, tags=["cases"])
async def get_case(request: Request, who: Viewer, case_id: CaseId) -> CaseView:
    """A case: status, verdict, status times, and its actions with their guard decisions."""
    return await cases_of(request).get(who, case_id)


@router.get("/v1/cases/{case_id}/ledger", response_model=list[LedgerEntry], tags=["cases"])
async def get_ledger(
    request: Request,
    who: Viewer,
    case_id: CaseId,
    from_seq: Annotated[int, Query(ge=1, le=2**31 - 1, description="first seq to return")] = 1,
) -> list[LedgerEntry]:
    """The case's hash-chained ledger entries, in seq order."""
    return await cases_of(request).ledger(who, case_id, from_seq)


@router.post(
    "/v1/cases/{case_id}/actions/{action_id}/decision",
    response_model=DecisionResult,
    tags=["cases"],
    responses={
        202: {"model": DecisionResult, "description": "queued; a worker will resume the case"},
        403: {"description": "the key's role may not decide (logged; the case's ledger is not touched)"},
        409: {"description": "the action is not pending or has expired (recorded in the ledger)"},
    },
)
async def decide(
    request: Request,
    who: Viewer,
    case_id: CaseId,
    action_id: Annotated[str, Path(max_length=32)],
    body: DecisionRequest,
) -> DecisionResult | JSONResponse:
    """Approve or reject an action waiting for approval; the paused triage resumes and carries it out."""
    result = await cases_of(request).decide(who, case_id, action_id, body)
    if result.state == "queued":
        return JSONResponse(status_code=202, content=result.model_dump(mode="json"))
    return result


@router.get("/healthz", tags=["operations"])
async def healthz(request: Request) -> JSONResponse:
    """Liveness and database reachability (no auth)."""
    cases = cases_of(request)

    def probe() -> int:
        with cases.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return cases.queue.depth()

    try:
        depth = await asyncio.to_thread(probe)
    except Exception as exc:
        return JSONResponse(status_code=503, content={"status": "unavailable", "error": type(exc).__name__})
    return JSONResponse({"status": "ok", "queue_depth": depth})


@router.get("/metrics", tags=["operations"], response_class=Response)
async def prometheus_metrics(who: Operator) -> Response:
    """Prometheus text format, for an `operator` key: the counts cover every tenant, so no tenant's key
    (not even an admin's) reads them."""
    body = await asyncio.to_thread(generate_latest, metrics.REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
