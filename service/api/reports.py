"""GET /v1/reports/evidence (DESIGN §8): the evidence report for the caller's own tenant."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from soctriage.service.api.security import Analyst
from soctriage.service.domain import utc_now
from soctriage.service.provenance import in_force
from soctriage.service.reports import (
    EvidenceParams,
    ReportFormat,
    evidence_from_store,
    parse_day,
    render_report,
)
from soctriage.service.reports.render import MEDIA_TYPES
from soctriage.service.store.signing import local_public_key

router = APIRouter(tags=["reports"])


def _day(name: str, text: str | None, *, end: bool = False) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_day(text, end=end)
    except ValueError as exc:
        raise HTTPException(422, {"field": name, "error": str(exc)}) from exc


@router.get(
    "/v1/reports/evidence",
    responses={
        200: {
            "description": "the report in the requested format",
            "content": {media: {} for media in MEDIA_TYPES.values()},
        }
    },
)
async def evidence_report(
    request: Request,
    who: Analyst,
    since: Annotated[str | None, Query(description="first day (YYYY-MM-DD, UTC) or ISO timestamp")] = None,
    until: Annotated[str | None, Query(description="last day included (YYYY-MM-DD) or ISO timestamp")] = None,
    tenant: Annotated[str | None, Query(description="must be your own tenant (the default)")] = None,
    fmt: Annotated[ReportFormat, Query(alias="format", description="json, md, html or pdf")] = "json",
) -> Response:
    """Alert volume, documented outcomes, response times, actions and approvals, model usage and ledger
    integrity for your tenant, recomputed from the case ledgers (every chain verified in the same pass)."""
    if tenant is not None and tenant != who.tenant:
        raise HTTPException(403, f"tenant {tenant!r}: a key only reads its own tenant ({who.tenant!r})")
    settings = request.app.state.settings
    params = EvidenceParams(
        generated_at=utc_now(),
        since=_day("since", since),
        until=_day("until", until, end=True),
        tenant=who.tenant,
        notification_window_h=settings.notification_window_h,
    )
    if params.since and params.until and params.since >= params.until:
        raise HTTPException(422, {"field": "since", "error": f"{since} is not before until {until}"})
    store = request.app.state.cases.store

    def build() -> bytes:
        report = evidence_from_store(store, params, public_key=local_public_key(settings))
        return render_report(report.model_copy(update={"provenance": in_force(settings)}), fmt)

    return Response(await asyncio.to_thread(build), media_type=MEDIA_TYPES[fmt])
