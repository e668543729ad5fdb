"""Alert intake: normalize a request body, quarantine what is unusable, and open each new alert's case together
with its triage job in one transaction."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from soctriage.service.api import metrics
from soctriage.service.domain import Alert, AlertFormat, Case
from soctriage.service.ingest import Rejection, normalize_bytes
from soctriage.service.queue import JobQueue, JobSpec
from soctriage.service.store import Store
from sqlalchemy import Connection

IntakeFormat = Literal["auto", AlertFormat]
SOURCE = "POST /v1/alerts"


class AcceptedAlert(BaseModel):
    alert_id: str
    case_id: str
    duplicate: bool = Field(description="the alert was already received; this is its existing case")


class RejectedRecord(BaseModel):
    line: int | None = Field(description="1-based line (JSONL) or record position of the rejected input")
    field: str | None = Field(description="the field that is wrong, when one is")
    reason: str
    message: str
    quarantine_id: int | None = Field(default=None, description="where the raw record is kept")


class IntakeReport(BaseModel):
    accepted: list[AcceptedAlert]
    rejected: list[RejectedRecord]


def accept_alerts(
    store: Store, queue: JobQueue, data: bytes, fmt: IntakeFormat, tenant: str, max_record_bytes: int
) -> IntakeReport:
    alerts: list[Alert] = []
    rejections: list[Rejection] = []
    for item in normalize_bytes(data, SOURCE, fmt, max_record_bytes):
        (rejections if isinstance(item, Rejection) else alerts).append(item)
    rejected = [
        RejectedRecord(
            line=item.line,
            field=item.field,
            reason=item.reason,
            message=item.message(),
            quarantine_id=quarantine_id,
        )
        for item, quarantine_id in zip(rejections, store.quarantine(rejections), strict=True)
    ]

    def enqueue(conn: Connection, cases: list[Case]) -> None:
        queue.enqueue(conn, [JobSpec(case.id, "triage", {}) for case in cases])

    outcomes = store.create_cases(alerts, tenant, on_created=enqueue) if alerts else []
    accepted = [
        AcceptedAlert(alert_id=alert.id, case_id=outcome.id, duplicate=False)
        if isinstance(outcome, Case)
        else AcceptedAlert(alert_id=alert.id, case_id=outcome.case_id, duplicate=True)
        for alert, outcome in zip(alerts, outcomes, strict=True)
    ]
    metrics.ALERTS_RECEIVED.inc(sum(not a.duplicate for a in accepted))
    metrics.ALERTS_DUPLICATE.inc(sum(a.duplicate for a in accepted))
    metrics.ALERTS_REJECTED.inc(len(rejected))
    return IntakeReport(accepted=accepted, rejected=rejected)
