"""Alert intake, one for every face: normalize the bytes (`POST /v1/alerts`, `soctriage triage FILE`), quarantine
each record that is unusable with its raw bytes, and open each new alert's case (with its triage job, when a
queue runs it) in one transaction, a re-delivered alert answering with its existing case; and the re-submission
of a quarantined record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field
from soctriage.service import metrics
from soctriage.service.domain import Alert, AlertFormat, Case
from soctriage.service.ingest import Rejection, normalize_bytes
from soctriage.service.queue import JobQueue, JobSpec
from soctriage.service.store import Grouping, Joined, QuarantinedRecord, Store
from sqlalchemy import Connection

IntakeFormat = Literal["auto", AlertFormat]
SOURCE = "POST /v1/alerts"
EMPTY_INPUT = "no alert records in it"


class AcceptedAlert(BaseModel):
    alert_id: str
    case_id: str
    duplicate: bool = Field(description="the alert was already received; this is its existing case")
    grouped: bool = Field(
        default=False, description="the alert joined the open case of its incident (policy `grouping`)"
    )


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
    store: Store,
    queue: JobQueue,
    data: bytes,
    fmt: IntakeFormat,
    tenant: str,
    max_record_bytes: int,
    grouping: Grouping | None = None,
) -> IntakeReport:
    alerts, rejections = read_records(data, SOURCE, fmt, max_record_bytes)
    rejected = quarantine(store, rejections, tenant)
    accepted = _open_cases(store, queue, alerts, tenant, grouping=grouping)
    return IntakeReport(accepted=accepted, rejected=rejected)


def quarantine(store: Store, rejections: list[Rejection], tenant: str) -> list[RejectedRecord]:
    """Keep every rejected record whole for `tenant`, in one transaction: one commit per bad record made an input
    of thousands of them take seconds per thousand."""
    kept = store.quarantine(rejections, tenant)
    metrics.ALERTS_REJECTED.inc(len(rejections))
    return [_rejected(item, quarantine_id) for item, quarantine_id in zip(rejections, kept, strict=True)]


def retry_quarantined(
    store: Store,
    queue: JobQueue,
    record: QuarantinedRecord,
    fmt: IntakeFormat,
    tenant: str,
    max_record_bytes: int,
) -> IntakeReport:
    """Submit a quarantined record again (after a fix to a normalizer, or with the right `fmt`) for `tenant`.
    When every part of it is accepted, its cases open and the quarantine lets it go in one transaction;
    otherwise nothing changes and the report says what is still wrong."""
    source = f"quarantine:{record.id}"
    alerts, rejections = read_records(record.rejection.raw, source, fmt, max_record_bytes)
    if not alerts and not rejections:
        rejections = [Rejection(source=source, line=1, reason="no alert in the record", raw=b"")]
    if rejections:
        return IntakeReport(accepted=[], rejected=[_rejected(item, record.id) for item in rejections])
    released = _open_cases(
        store, queue, alerts, tenant, also=lambda conn: store.release_quarantined(conn, record.id)
    )
    return IntakeReport(accepted=released, rejected=[])


def read_records(
    data: bytes, source: str, fmt: IntakeFormat, max_record_bytes: int
) -> tuple[list[Alert], list[Rejection]]:
    """Every record of `data` normalized, or rejected naming its line and field; `source` names the input."""
    alerts: list[Alert] = []
    rejections: list[Rejection] = []
    for item in normalize_bytes(data, source, fmt, max_record_bytes):
        (rejections if isinstance(item, Rejection) else alerts).append(item)
    return alerts, rejections


def _rejected(item: Rejection, quarantine_id: int) -> RejectedRecord:
    return RejectedRecord(
        line=item.line,
        field=item.field,
        reason=item.reason,
        message=item.message(),
        quarantine_id=quarantine_id,
    )


def _open_cases(
    store: Store,
    queue: JobQueue,
    alerts: list[Alert],
    tenant: str,
    also: Callable[[Connection], None] | None = None,
    grouping: Grouping | None = None,
) -> list[AcceptedAlert]:
    """Open a case per new alert (or join its incident's case) with its job, and run `also`, in one
    transaction."""

    def enqueue(conn: Connection, opened: list[Case | Joined]) -> None:
        queue.enqueue(conn, [_job(outcome) for outcome in opened])
        if also is not None:
            also(conn)

    outcomes = store.create_cases(alerts, tenant, on_created=enqueue, grouping=grouping) if alerts else []
    accepted = []
    for alert, outcome in zip(alerts, outcomes, strict=True):
        if isinstance(outcome, Case):
            accepted.append(AcceptedAlert(alert_id=alert.id, case_id=outcome.id, duplicate=False))
        elif isinstance(outcome, Joined):
            accepted.append(
                AcceptedAlert(alert_id=alert.id, case_id=outcome.case_id, duplicate=False, grouped=True)
            )
        else:
            accepted.append(AcceptedAlert(alert_id=alert.id, case_id=outcome.case_id, duplicate=True))
    metrics.ALERTS_RECEIVED.inc(sum(not a.duplicate for a in accepted))
    metrics.ALERTS_DUPLICATE.inc(sum(a.duplicate for a in accepted))
    return accepted


def _job(outcome: Case | Joined) -> JobSpec:
    if isinstance(outcome, Joined):
        return JobSpec(outcome.case_id, "grouped", {"alert_id": outcome.alert_id})
    return JobSpec(outcome.id, "triage", {})
