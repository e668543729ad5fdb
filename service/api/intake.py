"""Alert intake: normalize a request body, quarantine what is unusable, and open each new alert's case together
with its triage job in one transaction."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from soctriage.service.api import metrics
from soctriage.service.domain import Alert, AlertFormat, Case
from soctriage.service.ingest import Rejection, normalize_bytes
from soctriage.service.queue import JobQueue, JobSpec
from soctriage.service.store import Grouping, Joined, Store
from sqlalchemy import Connection

IntakeFormat = Literal["auto", AlertFormat]
SOURCE = "POST /v1/alerts"


class AcceptedAlert(BaseModel):
    alert_id: str
    case_id: str
    duplicate: bool = Field(description="the alert was already received; this is its existing case")
    grouped: bool = Field(
        default=False, description="the alert joined the open case of its incident (policy `grouping`)"
    )


class RejectedRecord(BaseModel):
    line: int | None = Field(description="1-based line (JSONL) or record position of the rejected input")
    alert_id: str | None = Field(
        default=None, description="set when the record parsed but cannot be accepted"
    )
    field: str | None = Field(description="the field that is wrong, when one is")
    reason: str
    message: str
    quarantine_id: int | None = Field(default=None, description="where the raw record is kept")


class IntakeReport(BaseModel):
    accepted: list[AcceptedAlert]
    rejected: list[RejectedRecord]


def accept_alerts(
    store: Store,
    queue: JobQueue,
    data: bytes,
    fmt: IntakeFormat,
    tenant: str,
    max_record_bytes: int,
    grouping: Grouping | None = None,
) -> IntakeReport:
    alerts: list[Alert] = []
    rejected: list[RejectedRecord] = []
    for item in normalize_bytes(data, SOURCE, fmt, max_record_bytes):
        if isinstance(item, Rejection):
            rejected.append(
                RejectedRecord(
                    line=item.line,
                    field=item.field,
                    reason=item.reason,
                    message=item.message(),
                    quarantine_id=store.quarantine(item),
                )
            )
        else:
            alerts.append(item)

    def enqueue(conn: Connection, opened: list[Case | Joined]) -> None:
        queue.enqueue(conn, [_job(outcome) for outcome in opened])

    accepted: list[AcceptedAlert] = []
    outcomes = store.create_cases(alerts, tenant, on_created=enqueue, grouping=grouping) if alerts else []
    for alert, outcome in zip(alerts, outcomes, strict=True):
        if isinstance(outcome, Case):
            accepted.append(AcceptedAlert(alert_id=alert.id, case_id=outcome.id, duplicate=False))
        elif isinstance(outcome, Joined):
            accepted.append(
                AcceptedAlert(alert_id=alert.id, case_id=outcome.case_id, duplicate=False, grouped=True)
            )
        elif outcome.tenant == tenant:
            accepted.append(AcceptedAlert(alert_id=alert.id, case_id=outcome.case_id, duplicate=True))
        else:
            # Alert ids are global (vendor + vendor alert id); never reveal the other tenant's case.
            reason = "an alert with this vendor alert id was already received for another tenant"
            rejected.append(
                RejectedRecord(
                    line=None, alert_id=alert.id, field="id", reason=reason, message=f"{alert.id}: {reason}"
                )
            )
    metrics.ALERTS_RECEIVED.inc(sum(not a.duplicate for a in accepted))
    metrics.ALERTS_DUPLICATE.inc(sum(a.duplicate for a in accepted))
    metrics.ALERTS_REJECTED.inc(len(rejected))
    return IntakeReport(accepted=accepted, rejected=rejected)


def _job(outcome: Case | Joined) -> JobSpec:
    if isinstance(outcome, Joined):
        return JobSpec(outcome.case_id, "grouped", {"alert_id": outcome.alert_id})
    return JobSpec(outcome.id, "triage", {})
