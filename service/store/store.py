"""The case store: alerts, cases, the hash-chained ledger and the quarantine, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, Self, TypeVar, get_args

from soctriage.service.config import Settings
from soctriage.service.domain import (
    GENESIS_HASH,
    Alert,
    Case,
    CaseStatus,
    LedgerEntry,
    LedgerKind,
    Verdict,
    format_ts,
    utc_now,
)
from soctriage.service.ingest.errors import Rejection
from soctriage.service.store.chain import (
    CaseVerification,
    ChainChecker,
    LedgerProblem,
    VerifyReport,
    clean_entry_input,
)
from soctriage.service.store.engine import (
    create_store_engine,
    store_exists,
    store_label,
    upgrade,
    write_transaction,
)
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
from soctriage.service.store.schema import (
    alert_groups,
    alerts,
    cases,
    json_doc,
    ledger,
    quarantine,
    queue_columns,
)
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    String,
    Text,
    bindparam,
    cast,
    exists,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError

CASE_STATUSES: frozenset[str] = frozenset(get_args(CaseStatus))
# Rows fetched per round trip while verifying: large enough to be fast, small enough to bound memory.
VERIFY_BATCH = 10_000

EntryInput = tuple[str, str, dict[str, Any]]
# An entry past clean_entry_input: actor, kind, payload as it reads back, and its canonical JSON text.
CleanEntry = tuple[str, str, dict[str, Any], str]

P = ParamSpec("P")
T = TypeVar("T")


class StoreError(Exception):
    """Base class of the store's own errors."""


class StoreNotFoundError(StoreError, LookupError):
    """A command that only reads found no store where the settings point: it never creates one."""

    def __init__(self, label: str) -> None:
        super().__init__(
            f"no store at {label}: nothing has been triaged there yet (set SOCTRIAGE_HOME or"
            " SOCTRIAGE_DATABASE_URL to the store you mean)"
        )
        self.label = label


class CaseNotFoundError(StoreError, LookupError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id!r} does not exist")
        self.case_id = case_id


class DuplicateAlertError(StoreError):
    """The alert is already stored: a re-delivery must join its existing case, not open another."""

    def __init__(self, alert_id: str, case_id: str, tenant: str) -> None:
        super().__init__(f"alert {alert_id!r} is already stored in case {case_id!r} (tenant {tenant!r})")
        self.alert_id = alert_id
        self.case_id = case_id
        self.tenant = tenant


class EvidenceError(StoreError, ValueError):
    """A verdict cites ledger entries its case does not have."""

    def __init__(self, case_id: str, missing: list[int], head_seq: int) -> None:
        super().__init__(
            f"verdict for {case_id} cites ledger seq {missing}, but the ledger has 1..{head_seq}"
        )
        self.case_id = case_id
        self.missing = missing
        self.head_seq = head_seq


@dataclass(frozen=True)
class QuarantinedRecord:
    id: int
    received_at: datetime
    tenant: str | None  # None: kept before the quarantine named tenants
    rejection: Rejection


def new_case_id() -> str:
    return f"case-{uuid.uuid4().hex[:12]}"


def alert_received_payload(alert: Alert) -> dict[str, Any]:
    """Ledger payload for a new alert: the normalized fields plus a digest of raw (raw itself stays in
    `alerts`, so an oversized or hostile record does not bloat every transcript)."""
    payload = alert.model_dump(mode="json", exclude={"raw"})
    payload["raw_sha256"] = hashlib.sha256(alert.raw.encode()).hexdigest()
    return payload


class Store:
    """All reads and writes of cases and their ledgers. Every ledger write moves the case head in the same
    transaction, under a lock on the case, so seq stays gapless with many writers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, settings: Settings | None = None, *, migrate: bool = True, create: bool = True) -> Self:
        """Open the configured database (the SQLite file under SOCTRIAGE_HOME by default), migrating it. With
        `create=False` a store that does not exist yet raises StoreNotFoundError instead of being made."""
        settings = settings or Settings()
        if not create and not store_exists(settings.sqlalchemy_url):
            raise StoreNotFoundError(store_label(settings.sqlalchemy_url))
        engine = create_store_engine(settings.sqlalchemy_url, sqlite_synchronous=settings.sqlite_synchronous)
        if migrate:
            upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    async def io(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call from async code. On SQLite it runs in place: a local file is faster than a hop to
        a thread and back. On PostgreSQL it runs on a worker thread: every statement is a network round trip,
        and a blocked event loop would stall every other graph run on it."""
        if self.engine.dialect.name == "sqlite":
            return call(*args, **kwargs)
        return await asyncio.to_thread(call, *args, **kwargs)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # One snapshot for the whole read, so heads and entries agree while writers keep appending.
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    # ---- cases and alerts ---------------------------------------------------------------------------

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
                    stored_in = conn.execute(_CASE_OF_ALERT, params).scalar()
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
            payload, payload_text = clean_entry_input(
                "system", "alert_received", alert_received_payload(alert)
            )
            now = utc_now()
            case_id = new_case_id()
            entry_hash = LedgerEntry.hash_of_text(
                case_id, 1, format_ts(now), "system", "alert_received", payload_text, GENESIS_HASH
            )
            rows.cases.append(
                {
                    "id": case_id,
                    "tenant": tenant,
                    "status": "new",
                    "verdict": None,
                    "status_times": {"new": format_ts(now)},
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
                (case_id, 1, now, "system", "alert_received", payload_text, GENESIS_HASH, entry_hash)
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
        head = LedgerStatements(conn).lock_head(case_id)
        if head is None:
            raise CaseNotFoundError(case_id)
        payload = alert_received_payload(alert) | {"grouping": [key.shown() for key in keys]}
        clean = clean_entry_input("system", "alert_received", payload)
        [entry] = self._append_locked(conn, case_id, *head, [("system", "alert_received", *clean)])
        conn.execute(_INSERT_ALERT, [_alert_row(alert, case_id, tenant, entry.ts, clean[0])])
        return Joined(case_id=case_id, alert_id=alert.id, tenant=tenant, seq=entry.seq, keys=keys)

    def get_case(self, case_id: str) -> Case | None:
        if "\x00" in case_id:
            # No stored id holds a NUL, and PostgreSQL refuses one in a query parameter with an error.
            return None
        with self._read() as conn:
            row = conn.execute(_CASE_ROW, {"case_id": case_id}).first()
            return None if row is None else self._to_case(row, self._case_alert_ids(conn, case_id))

    def list_cases(
        self, status: CaseStatus | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[Case]:
        """Newest first."""
        query = select(cases).order_by(cases.c.created_at.desc(), cases.c.id).limit(limit)
        if status is not None:
            query = query.where(cases.c.status == _valid_status(status))
        if tenant is not None:
            query = query.where(cases.c.tenant == tenant)
        with self._read() as conn:
            rows = conn.execute(query).all()
            alert_ids = self._alert_ids(conn, [row.id for row in rows])
        return [self._to_case(row, alert_ids[row.id]) for row in rows]

    def case_ids(self, status: CaseStatus) -> list[str]:
        """Every case in `status`, of every tenant, oldest first (for sweeps, not for display)."""
        query = select(cases.c.id).where(cases.c.status == _valid_status(status)).order_by(cases.c.created_at)
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def find_case_by_alert(self, alert_id: str, tenant: str) -> Case | None:
        with self._read() as conn:
            case_id = conn.execute(_CASE_OF_ALERT, {"alert_id": alert_id, "tenant": tenant}).scalar()
            return None if case_id is None else self._load_case(conn, case_id)

    def get_alert(self, alert_id: str, tenant: str) -> Alert | None:
        """The tenant's copy of the alert (each tenant that received it has its own)."""
        with self._read() as conn:
            row = conn.execute(
                select(alerts.c.normalized, alerts.c.raw).where(
                    alerts.c.id == alert_id, alerts.c.tenant == tenant
                )
            ).first()
        return None if row is None else Alert.model_validate({**row.normalized, "raw": row.raw})

    def set_status(self, case_id: str, status: CaseStatus, actor: str, reason: str) -> Case:
        """Move the case to `status`, writing a `status_change` entry; the entry's time becomes the status
        time when the case reaches this status for the first time."""
        new_status = _valid_status(status)
        with write_transaction(self.engine) as conn:
            head = self._lock_case(conn, case_id)
            change = {"from": head.status, "to": new_status, "reason": reason}
            times = dict(head.status_times)
            ts = utc_now()
            times.setdefault(new_status, format_ts(ts))
            self._append_locked(
                conn,
                case_id,
                head.head_seq,
                head.head_hash,
                [(actor, "status_change", *clean_entry_input(actor, "status_change", change))],
                ts=ts,
                status=new_status,
                status_times=times,
            )
            alert_ids = self._case_alert_ids(conn, case_id)
            return self._to_case(head, alert_ids, status=new_status, status_times=times)

    def set_verdict(self, case_id: str, verdict: Verdict, entry: EntryInput | None = None) -> Case:
        """Record the case's verdict; every evidence seq it cites must exist in this case's ledger, else
        `EvidenceError`. `entry`, when given, is appended in the same transaction (the verdict's own
        ledger entry), so the case never holds a verdict its transcript lacks."""
        items = [] if entry is None else [(entry[0], entry[1], *clean_entry_input(*entry))]
        with write_transaction(self.engine) as conn:
            head = self._lock_case(conn, case_id)
            missing = sorted(seq for seq in set(verdict.evidence) if not 1 <= seq <= head.head_seq)
            if missing:
                raise EvidenceError(case_id, missing, head.head_seq)
            stored = verdict.model_dump(mode="json")
            shown = {"severity": verdict.severity.label, "disposition": verdict.disposition}
            if items:
                self._append_locked(
                    conn, case_id, head.head_seq, head.head_hash, items, verdict=stored, **shown
                )
            else:
                conn.execute(_SET_VERDICT, {"case_id": case_id, "verdict": stored, "at": utc_now(), **shown})
            return self._to_case(head, self._case_alert_ids(conn, case_id), verdict=verdict)

    def _lock_case(self, conn: Connection, case_id: str) -> Row[Any]:
        # FOR UPDATE serialises PostgreSQL writers on the case row; SQLite drops it (BEGIN IMMEDIATE locks).
        row = conn.execute(_LOCK_CASE, {"case_id": case_id}).first()
        if row is None:
            raise CaseNotFoundError(case_id)
        return row

    def _load_case(self, conn: Connection, case_id: str) -> Case:
        row = conn.execute(_CASE_ROW, {"case_id": case_id}).first()
        if row is None:
            raise CaseNotFoundError(case_id)
        return self._to_case(row, self._case_alert_ids(conn, case_id))

    @staticmethod
    def _case_alert_ids(conn: Connection, case_id: str) -> list[str]:
        return list(conn.execute(_ALERT_IDS_OF_CASE, {"case_id": case_id}).scalars())

    @staticmethod
    def _alert_ids(conn: Connection, case_ids: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {case_id: [] for case_id in case_ids}
        if case_ids:
            query = (
                select(alerts.c.case_id, alerts.c.id)
                .where(alerts.c.case_id.in_(case_ids))
                .order_by(alerts.c.received_at, alerts.c.id)
            )
            for case_id, alert_id in conn.execute(query):
                found[case_id].append(alert_id)
        return found

    @staticmethod
    def _to_case(row: Row[Any], alert_ids: list[str], **changes: Any) -> Case:
        """The case in `row`, with `changes` a write just made in the same transaction."""
        fields = {
            "id": row.id,
            "tenant": row.tenant,
            "status": row.status,
            "alert_ids": tuple(alert_ids),
            "verdict": row.verdict,
            "status_times": row.status_times,
            "assignee": row.assignee,
            "created_at": row.created_at,
        }
        return Case.model_validate(fields | changes)

    # ---- ledger ------------------------------------------------------------------------------------

    def append(self, case_id: str, actor: str, kind: str, payload: dict[str, Any]) -> LedgerEntry:
        """Append one entry to the case's chain in its own transaction."""
        [entry] = self.append_many(case_id, [(actor, kind, payload)])
        return entry

    def append_many(self, case_id: str, entries: Iterable[EntryInput]) -> list[LedgerEntry]:
        """Append several entries, consecutive in the chain, in one transaction (all or none)."""
        clean = [(actor, kind, *clean_entry_input(actor, kind, payload)) for actor, kind, payload in entries]
        if not clean:
            return []
        with write_transaction(self.engine) as conn:
            statements = LedgerStatements(conn)
            head = statements.lock_head(case_id)
            if head is None:
                raise CaseNotFoundError(case_id)
            return self._append_locked(conn, case_id, *head, clean)

    @staticmethod
    def _append_locked(
        conn: Connection,
        case_id: str,
        head_seq: int,
        head_hash: str,
        items: Sequence[CleanEntry],
        *,
        ts: datetime | None = None,
        **case_values: Any,
    ) -> list[LedgerEntry]:
        """Chain `items` (already cleaned) after the head the caller read under its lock, then move the head
        in one UPDATE that also writes `case_values` (a status or a verdict changing with the entry).
        `ts` stamps the first entry, for callers that already used that time."""
        seq, prev_hash = head_seq, head_hash
        written: list[LedgerEntry] = []
        rows: list[EntryRow] = []
        for actor, kind, payload, payload_text in items:
            seq += 1
            at, ts = ts or utc_now(), None
            digest = LedgerEntry.hash_of_text(
                case_id, seq, format_ts(at), actor, kind, payload_text, prev_hash
            )
            # Values checked by clean_entry_input and computed above: validating them again costs, not guards.
            written.append(
                LedgerEntry.model_construct(
                    case_id=case_id,
                    seq=seq,
                    ts=at,
                    actor=actor,
                    kind=kind,
                    payload=payload,
                    prev_hash=prev_hash,
                    hash=digest,
                )
            )
            rows.append((case_id, seq, at, actor, kind, payload_text, prev_hash, digest))
            prev_hash = digest
        statements = LedgerStatements(conn)
        statements.insert(rows)
        if case_values:
            move = {"case_id": case_id, "seq": seq, "hash": prev_hash, "at": written[-1].ts}
            conn.execute(_move_head(tuple(case_values)), move | case_values)
        else:
            statements.move_head(case_id, seq, prev_hash, written[-1].ts)
        return written

    def entries(self, case_id: str, from_seq: int = 1, kind: LedgerKind | None = None) -> list[LedgerEntry]:
        """The case's entries in seq order, from `from_seq`, optionally only those of one kind."""
        params = {"case_id": case_id, "from_seq": from_seq, "kind": kind}
        with self._read() as conn:
            rows = conn.execute(_ENTRIES if kind is None else _ENTRIES_OF_KIND, params).all()
            # Every case has its alert_received entry, so only an empty answer can mean "no such case".
            if not rows and conn.execute(_HEAD_SEQ, params).first() is None:
                raise CaseNotFoundError(case_id)
        return [LedgerEntry.model_validate(row._asdict()) for row in rows]

    def head_seq(self, case_id: str) -> int:
        """The seq of the case's last ledger entry (entries are gapless, so 1..head_seq all exist)."""
        with self._read() as conn:
            head = conn.execute(_HEAD_SEQ, {"case_id": case_id}).scalar()
        if head is None:
            raise CaseNotFoundError(case_id)
        return int(head)

    def verify(self, case_ids: Sequence[str] | None = None) -> VerifyReport:
        """Check every chain (or the named cases) and each chain's end against its case's stored head.

        Streams entries ordered by (case_id, seq) in batches, so memory does not grow with the ledger.
        """
        with self._read() as conn:
            if case_ids is None:
                return VerifyReport(tuple(self._verify_all(conn)))
            return VerifyReport(
                tuple(self._verify_case(conn, case_id) for case_id in dict.fromkeys(case_ids))
            )

    def _verify_case(self, conn: Connection, case_id: str) -> CaseVerification:
        head = conn.execute(select(cases.c.head_seq, cases.c.head_hash).where(cases.c.id == case_id)).first()
        if head is None:
            return CaseVerification(
                case_id, LedgerProblem(None, f"case {case_id} does not exist"), 0, None, None
            )
        rows = conn.execution_options(yield_per=VERIFY_BATCH).execute(
            select(*STORED_ENTRY_COLUMNS).where(ledger.c.case_id == case_id).order_by(ledger.c.seq)
        )
        checker = ChainChecker(case_id)
        for row in rows:
            if checker.feed(row) is not None:
                break
        rows.close()
        return _finish(checker, case_id, head.head_seq, head.head_hash)

    def _verify_all(self, conn: Connection) -> Iterator[CaseVerification]:
        # Joining the head onto each row keeps this a single ordered stream (no per-case queries), and the
        # outer join surfaces entries whose case row is gone.
        query = (
            select(*STORED_ENTRY_COLUMNS, cases.c.head_seq, cases.c.head_hash)
            .select_from(ledger.outerjoin(cases, cases.c.id == ledger.c.case_id))
            .order_by(ledger.c.case_id, ledger.c.seq)
        )
        yield from verify_rows(conn.execution_options(yield_per=VERIFY_BATCH).execute(query))
        # Cases whose every entry is gone never appear in the stream above.
        emptied = select(cases.c.id, cases.c.head_seq, cases.c.head_hash).where(
            ~exists().where(ledger.c.case_id == cases.c.id)
        )
        for row in conn.execute(emptied.order_by(cases.c.id)):
            yield _finish(ChainChecker(row.id), row.id, row.head_seq, row.head_hash)

    # ---- quarantine --------------------------------------------------------------------------------

    def quarantine(self, rejections: Sequence[Rejection], tenant: str) -> list[int]:
        """Keep records `tenant`'s intake could not use, raw bytes whole, in one transaction; returns their
        quarantine ids in order. One transaction for the lot: a body of many bad records must cost one commit,
        not one each."""
        if not rejections:
            return []
        now = utc_now()
        rows = [{"received_at": now, "tenant": tenant, **rejection.model_dump()} for rejection in rejections]
        with write_transaction(self.engine) as conn:
            return list(conn.execute(_INSERT_QUARANTINE, rows).scalars())

    def list_quarantine(self, limit: int = 100, tenant: str | None = None) -> list[QuarantinedRecord]:
        """Newest first; one tenant's, or every tenant's when `tenant` is None."""
        query = select(quarantine).order_by(quarantine.c.id.desc()).limit(limit)
        if tenant is not None:
            query = query.where(quarantine.c.tenant == tenant)
        with self._read() as conn:
            return [_quarantined(row) for row in conn.execute(query)]

    def get_quarantined(self, quarantine_id: int) -> QuarantinedRecord | None:
        with self._read() as conn:
            row = conn.execute(select(quarantine).where(quarantine.c.id == quarantine_id)).first()
        return None if row is None else _quarantined(row)

    @staticmethod
    def release_quarantined(conn: Connection, quarantine_id: int) -> None:
        """Drop a quarantined record whose re-submission opened its cases, in that transaction (`conn`): its
        raw bytes now live with its alerts."""
        conn.execute(quarantine.delete().where(quarantine.c.id == quarantine_id))


def _quarantined(row: Row[Any]) -> QuarantinedRecord:
    rejection = Rejection(
        source=row.source, line=row.line, reason=row.reason, field=row.field, raw=row.raw, format=row.format
    )
    return QuarantinedRecord(id=row.id, received_at=row.received_at, tenant=row.tenant, rejection=rejection)


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
            LedgerStatements(conn).insert(self.entries)
        if self.keys:
            conn.execute(_INSERT_GROUP_KEY, self.keys)
        self.cases, self.alerts, self.entries, self.keys = [], [], [], []


# The append path runs these thousands of times a second; building them once skips per-call construction
# and SQLAlchemy's cache-key computation.
_CASE_ROW = select(cases).where(cases.c.id == bindparam("case_id"))
_LOCK_CASE = _CASE_ROW.with_for_update()
_HEAD_SEQ = select(cases.c.head_seq).where(cases.c.id == bindparam("case_id"))
_CASE_OF_ALERT = select(alerts.c.case_id).where(
    alerts.c.id == bindparam("alert_id"), alerts.c.tenant == bindparam("tenant")
)
_ALERT_IDS_OF_CASE = (
    select(alerts.c.id)
    .where(alerts.c.case_id == bindparam("case_id"))
    .order_by(alerts.c.received_at, alerts.c.id)
)
_ENTRIES = (
    select(ledger)
    .where(ledger.c.case_id == bindparam("case_id"), ledger.c.seq >= bindparam("from_seq"))
    .order_by(ledger.c.seq)
)
_ENTRIES_OF_KIND = _ENTRIES.where(ledger.c.kind == bindparam("kind"))
_INSERT_CASE = cases.insert()
_INSERT_ALERT = alerts.insert()
_INSERT_QUARANTINE = quarantine.insert().returning(quarantine.c.id, sort_by_parameter_order=True)
_INSERT_GROUP_KEY = alert_groups.insert()
_SET_VERDICT = (
    update(cases)
    .where(cases.c.id == bindparam("case_id"))
    .values(
        verdict=bindparam("verdict", type_=json_doc),
        updated_at=bindparam("at"),
        severity=bindparam("severity"),
        disposition=bindparam("disposition"),
    )
)
_MOVE_HEAD_WITH: dict[tuple[str, ...], Any] = {}


def _move_head(also: tuple[str, ...]) -> Any:
    """The head-moving UPDATE, also setting the case columns named in `also` (one statement per set)."""
    if also not in _MOVE_HEAD_WITH:
        _MOVE_HEAD_WITH[also] = (
            update(cases)
            .where(cases.c.id == bindparam("case_id"))
            .values(
                head_seq=bindparam("seq"),
                head_hash=bindparam("hash"),
                updated_at=bindparam("at"),
                **{name: bindparam(name, type_=cases.c[name].type) for name in also},
            )
        )
    return _MOVE_HEAD_WITH[also]


# Verify reads ts and payload as stored (SQLite: text; PostgreSQL: timestamptz and json text) and lets the
# chain checker parse them, so an edit that leaves unparseable content is reported, not raised.
STORED_ENTRY_COLUMNS = (
    ledger.c.case_id,
    ledger.c.seq,
    type_coerce(ledger.c.ts, String).label("ts"),
    ledger.c.actor,
    ledger.c.kind,
    cast(ledger.c.payload, Text).label("payload"),
    ledger.c.prev_hash,
    ledger.c.hash,
)


def verify_rows(rows: Iterable[Row[Any]]) -> Iterator[CaseVerification]:
    """One result per chain from stored entries ordered by (case_id, seq), each row `STORED_ENTRY_COLUMNS`
    plus its case's stored `head_seq` and `head_hash` (None when the case row is gone). Only the chain being
    read is held in memory."""
    checker: ChainChecker | None = None
    head: tuple[int | None, str | None] = (None, None)
    for row in rows:
        if checker is None or row.case_id != checker.case_id:
            if checker is not None:
                yield _finish(checker, checker.case_id, *head)
            checker, head = ChainChecker(row.case_id), (row.head_seq, row.head_hash)
        if checker.problem is None:
            checker.feed(row)
    if checker is not None:
        yield _finish(checker, checker.case_id, *head)


def _finish(
    checker: ChainChecker, case_id: str | None, head_seq: int | None, head_hash: str | None
) -> CaseVerification:
    if head_seq is None:
        problem = LedgerProblem(None, f"ledger has entries for case {case_id}, which does not exist")
    else:
        problem = checker.finish(head_seq, head_hash)
    return CaseVerification(str(case_id), problem, checker.count, head_seq, head_hash)


def _valid_status(status: str) -> str:
    if status not in CASE_STATUSES:
        raise ValueError(f"unknown case status {status!r}; expected one of {sorted(CASE_STATUSES)}")
    return status
