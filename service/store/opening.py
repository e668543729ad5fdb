"""Opening cases: an alert's new case, or its incident's case (grouping), or the refusal of an alert already
stored, with the first ledger entry, in batches of one statement per table."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from soctriage.service.domain import GENESIS_HASH, Alert, Case, LedgerEntry, format_ts, utc_now
from soctriage.service.ledger_events import AlertReceived
from soctriage.service.store.base import StoreBase
from soctriage.service.store.chain import clean_entry_input
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.errors import CaseNotFoundError, DuplicateAlertError
from soctriage.service.store.grouping import (
    Grouping,
    GroupKey,
    Joined,
    find_case,
    lock_tenant,
    new_rows,
    remember,
)
from soctriage.service.store.ledger_sql import EntryRow, LedgerStatements
from soctriage.service.store.schema import alert_groups, alerts, cases, queue_columns
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError


def new_case_id() -> str:
    return f"case-{uuid.uuid4().hex[:12]}"


class CaseOpening(StoreBase):
    """Opening cases (part of `Store`, whose `_append_locked` a joining alert's entry goes through)."""

    def create_case(self, alert: Alert, tenant: str) -> Case:
        """Store `alert` in a new case and write its `alert_received` entry (seq 1, actor `system`)."""
        created = self.open_or_join(alert, tenant)
        assert isinstance(created, Case), "no grouping was asked for"
        return created

    def open_or_join(self, alert: Alert, tenant: str, grouping: Grouping | None = None) -> Case | Joined:
        """Store `alert` in the case of its incident (`grouping`), or in a new case; DuplicateAlertError when it
        is already stored."""
        [created] = self.create_cases([alert], tenant, grouping=grouping)
        if isinstance(created, DuplicateAlertError):
            raise created
        return created

    def create_cases(
        self,
        alerts: Sequence[Alert],
        tenant: str,
        *,
        on_created: Callable[[Connection, list[Case | Joined]], None] | None = None,
        grouping: Grouping | None = None,
    ) -> list[Case | Joined | DuplicateAlertError]:
        """Open one case per alert in ONE transaction, each with its `alert_received` entry; an alert already
        stored yields its DuplicateAlertError instead of a case. With `grouping`, an alert whose keys match a
        case of the tenant within the window joins that case (`Joined`, an `alert_received` entry saying why)
        instead. `on_created(conn, outcomes)` runs inside that transaction with the new and joined cases, so
        work that must commit or roll back with them (their job rows) does."""
        try:
            with write_transaction(self.engine) as conn:
                if grouping is not None:
                    lock_tenant(conn, tenant)
                created = self._create_locked(conn, alerts, tenant, grouping)
                if on_created is not None:
                    on_created(conn, [c for c in created if not isinstance(c, DuplicateAlertError)])
                return created
        except IntegrityError:
            # A concurrent writer stored one of these alerts between our check and our insert (PostgreSQL):
            # one transaction per alert then isolates the duplicate from the rest.
            if len(alerts) == 1:
                with self._read() as conn:
                    params = {"alert_id": alerts[0].id, "tenant": tenant}
                    stored_in = conn.execute(CASE_OF_ALERT, params).scalar()
                if stored_in is None:
                    raise
                # The outcome promised for an alert already stored, here too: a raise was a 500 over HTTP.
                return [DuplicateAlertError(alerts[0].id, stored_in, tenant)]
            return [
                created
                for alert in alerts
                for created in self.create_cases([alert], tenant, on_created=on_created, grouping=grouping)
            ]

    def _create_locked(
        self, conn: Connection, batch: Sequence[Alert], tenant: str, grouping: Grouping | None
    ) -> list[Case | Joined | DuplicateAlertError]:
        """Insert the cases, alerts and first ledger entries of a batch with one statement per table: intake
        sees thousands of alerts a second, and per-row statements would cost more than the rows."""
        stored = {
            row.id: DuplicateAlertError(row.id, row.case_id, row.tenant)
            for row in conn.execute(
                select(alerts.c.id, alerts.c.case_id, alerts.c.tenant).where(
                    alerts.c.tenant == tenant, alerts.c.id.in_({alert.id for alert in batch})
                )
            )
        }
        outcomes: list[Case | Joined | DuplicateAlertError] = []
        rows = _BatchRows()
        for alert in batch:
            if alert.id in stored:
                outcomes.append(stored[alert.id])
                continue
            keys = tuple(grouping.keys(alert)) if grouping is not None else ()
            if grouping is not None and keys:
                # Cases opened earlier in this batch must be in the tables before the lookup can find them.
                rows.flush(conn)
                match = find_case(conn, tenant, keys, alert.time, grouping.window)
                if match is not None:
                    joined = self._join_locked(conn, match[0], alert, tenant, match[1])
                    remember(conn, tenant, joined.case_id, keys, alert.time)
                    stored[alert.id] = DuplicateAlertError(alert.id, joined.case_id, tenant)
                    outcomes.append(joined)
                    continue
            payload, payload_text = clean_entry_input("system", "alert_received", AlertReceived.of(alert))
            now = utc_now()
            now_text = format_ts(now)
            case_id = new_case_id()
            entry_hash = LedgerEntry.hash_of_text(
                case_id, 1, now_text, "system", "alert_received", payload_text, GENESIS_HASH
            )
            rows.cases.append(
                {
                    "id": case_id,
                    "tenant": tenant,
                    "status": "new",
                    "verdict": None,
                    "status_times": {"new": now_text},
                    "assignee": None,
                    "created_at": now,
                    "updated_at": now,
                    "head_seq": 1,
                    "head_hash": entry_hash,
                    **queue_columns(payload, None),
                }
            )
            rows.alerts.append(_alert_row(alert, case_id, tenant, now, payload))
            rows.entries.append(
                (
                    case_id,
                    1,
                    now,
                    now_text,
                    "system",
                    "alert_received",
                    payload_text,
                    GENESIS_HASH,
                    entry_hash,
                )
            )
            rows.keys.extend(new_rows(tenant, case_id, keys, alert.time))
            # A second copy of the same alert later in this batch joins this case.
            stored[alert.id] = DuplicateAlertError(alert.id, case_id, tenant)
            outcomes.append(
                Case(
                    id=case_id,
                    tenant=tenant,
                    status="new",
                    alert_ids=(alert.id,),
                    status_times={"new": now},
                    created_at=now,
                )
            )
        rows.flush(conn)
        return outcomes

    def _join_locked(
        self, conn: Connection, case_id: str, alert: Alert, tenant: str, keys: tuple[GroupKey, ...]
    ) -> Joined:
        """Append `alert` to the case's chain as an `alert_received` entry that says why it joined."""
        head = LedgerStatements.on(conn).lock_head(case_id)
        if head is None:
            raise CaseNotFoundError(case_id)
        payload = AlertReceived.of(alert, grouping=[key.shown() for key in keys])
        clean = clean_entry_input("system", "alert_received", payload)
        [entry] = self._append_locked(conn, case_id, *head, [("system", "alert_received", *clean)])
        conn.execute(_INSERT_ALERT, [_alert_row(alert, case_id, tenant, entry.ts, clean[0])])
        return Joined(case_id=case_id, alert_id=alert.id, tenant=tenant, seq=entry.seq, keys=keys)


def _alert_row(
    alert: Alert, case_id: str, tenant: str, now: datetime, payload: dict[str, Any]
) -> dict[str, Any]:
    normalized = {k: v for k, v in payload.items() if k not in ("raw_sha256", "grouping")}
    return {
        "id": alert.id,
        "case_id": case_id,
        "tenant": tenant,
        "received_at": now,
        "vendor": alert.source.vendor,
        "product": alert.source.product,
        "format": alert.source.format,
        "vendor_alert_id": alert.source.vendor_alert_id,
        "raw": alert.raw,
        "raw_sha256": payload["raw_sha256"],
        "normalized": normalized,
    }


@dataclass
class _BatchRows:
    """Rows of the cases a batch opens, inserted one statement per table."""

    cases: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    entries: list[EntryRow] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, conn: Connection) -> None:
        if self.cases:
            conn.execute(_INSERT_CASE, self.cases)
            conn.execute(_INSERT_ALERT, self.alerts)
            LedgerStatements.on(conn).insert(self.entries)
        if self.keys:
            conn.execute(_INSERT_GROUP_KEY, self.keys)
        self.cases, self.alerts, self.entries, self.keys = [], [], [], []


CASE_OF_ALERT = select(alerts.c.case_id).where(
    alerts.c.id == bindparam("alert_id"), alerts.c.tenant == bindparam("tenant")
)
_INSERT_CASE = cases.insert()
_INSERT_ALERT = alerts.insert()
_INSERT_GROUP_KEY = alert_groups.insert()
