"""The quarantine's door for a tenant's admin: list the records its intake rejected, read one whole, submit it
again. Another tenant's record is reported exactly like a missing one."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from soctriage.service.api.deps import FormatQuery, cases_of
from soctriage.service.api.security import Admin
from soctriage.service.auth import Principal
from soctriage.service.cases import NotFoundError
from soctriage.service.domain import AlertFormat
from soctriage.service.intake import IntakeReport, retry_quarantined
from soctriage.service.store import QuarantinedRecord

router = APIRouter(tags=["quarantine"])

QuarantineId = Annotated[int, Path(ge=1, le=2**63 - 1, description="quarantine id, from the intake report")]


class QuarantinedView(BaseModel):
    id: int
    received_at: datetime
    source: str = Field(description="where it came from: POST /v1/alerts, or the file a command read")
    line: int | None
    format: AlertFormat | None
    reason: str
    field: str | None
    size: int = Field(description="bytes of the raw record")

    @classmethod
    def of(cls, record: QuarantinedRecord) -> QuarantinedView:
        rejection = record.rejection
        return cls(
            id=record.id,
            received_at=record.received_at,
            source=rejection.source,
            line=rejection.line,
            format=rejection.format,
            reason=rejection.reason,
            field=rejection.field,
            size=len(rejection.raw),
        )


class QuarantinedRecordView(QuarantinedView):
    raw_base64: str = Field(description="the record exactly as received")
    raw_text: str = Field(description="the same as UTF-8 text, undecodable bytes replaced (attacker written)")


async def _visible(request: Request, who: Principal, quarantine_id: int) -> QuarantinedRecord:
    record = await asyncio.to_thread(cases_of(request).store.get_quarantined, quarantine_id)
    if record is None or record.tenant != who.tenant:
        raise NotFoundError(f"quarantined record {quarantine_id} does not exist")
    return record


@router.get("/v1/quarantine", response_model=list[QuarantinedView])
async def list_quarantine(
    request: Request, who: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[QuarantinedView]:
    """The records your tenant's intake rejected, newest first, without their bytes."""
    records = await asyncio.to_thread(cases_of(request).store.list_quarantine, limit, who.tenant)
    return [QuarantinedView.of(record) for record in records]


@router.get("/v1/quarantine/{quarantine_id}", response_model=QuarantinedRecordView)
async def show_quarantined(
    request: Request, who: Admin, quarantine_id: QuarantineId
) -> QuarantinedRecordView:
    """One rejected record, whole: why, and its raw bytes."""
    record = await _visible(request, who, quarantine_id)
    raw = record.rejection.raw
    return QuarantinedRecordView(
        **QuarantinedView.of(record).model_dump(),
        raw_base64=base64.b64encode(raw).decode(),
        raw_text=raw.decode("utf-8", "replace"),
    )


@router.post(
    "/v1/quarantine/{quarantine_id}/retry",
    response_model=IntakeReport,
    responses={422: {"description": "still rejected; the record stays in quarantine"}},
)
async def retry(
    request: Request,
    who: Admin,
    quarantine_id: QuarantineId,
    fmt: FormatQuery = "auto",
) -> IntakeReport | JSONResponse:
    """Submit a rejected record again, e.g. with the right `format`. Accepted, it opens its cases (queued for
    triage) and leaves the quarantine; still rejected, it stays and the report says why."""
    record = await _visible(request, who, quarantine_id)
    cases = cases_of(request)
    max_record_bytes = request.app.state.settings.max_record_bytes
    report = await asyncio.to_thread(
        retry_quarantined, cases.store, cases.queue, record, fmt, who.tenant, max_record_bytes
    )
    if not report.accepted:
        return JSONResponse(
            status_code=422, content={"detail": "still rejected", **report.model_dump(mode="json")}
        )
    return report
