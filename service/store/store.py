"""The case store: alerts, cases, the hash-chained ledger and the quarantine, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, ParamSpec, Self, TypeVar, get_args

from soctriage.service.config import Settings
from soctriage.service.domain import (
    Alert,
    Case,
    CaseStatus,
    LedgerEntry,
    LedgerKind,
    Verdict,
    format_ts,
    utc_now,
)
from soctriage.service.ledger_events import StatusChange
from soctriage.service.ledger_payload import LedgerPayload
from soctriage.service.store.chain import clean_entry_input
from soctriage.service.store.engine import (
    create_store_engine,
    driver_transaction,
    store_exists,
    store_label,
    upgrade,
    write_transaction,
)
from soctriage.service.store.errors import CaseNotFoundError, EvidenceError, StoreNotFoundError
from soctriage.service.store.ledger_sql import EntryRow, LedgerStatements
from soctriage.service.store.opening import CASE_OF_ALERT, CaseOpening
from soctriage.service.store.quarantine import Quarantine
from soctriage.service.store.schema import alerts, cases, json_doc, ledger
from soctriage.service.store.verify import ChainVerification
from sqlalchemy import Connection, Row, bindparam, select, update

CASE_STATUSES: frozenset[str] = frozenset(get_args(CaseStatus))

EntryInput = tuple[str, str, LedgerPayload | dict[str, Any]]
# An entry past clean_entry_input: actor, kind, payload as it reads back, and its canonical JSON text.
CleanEntry = tuple[str, str, dict[str, Any], str]

P = ParamSpec("P")
T = TypeVar("T")


class Store(CaseOpening, ChainVerification, Quarantine):
    """All reads and writes of cases and their ledgers. Every ledger write moves the case head in the same
    transaction, under a lock on the case, so seq stays gapless with many writers."""

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

    # ---- cases and alerts ---------------------------------------------------------------------------

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
            case_id = conn.execute(CASE_OF_ALERT, {"alert_id": alert_id, "tenant": tenant}).scalar()
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

    def set_status(
        self, case_id: str, status: CaseStatus, actor: str, reason: str, then: Sequence[EntryInput] = ()
    ) -> Case:
        """Move the case to `status`, writing a `status_change` entry; the entry's time becomes the status
        time when the case reaches this status for the first time. `then` are entries appended after it in
        the same transaction."""
        new_status = _valid_status(status)
        with write_transaction(self.engine) as conn:
            head = self._lock_case(conn, case_id)
            change = StatusChange(from_=head.status, to=new_status, reason=reason)
            times = dict(head.status_times)
            ts = utc_now()
            times.setdefault(new_status, format_ts(ts))
            self._append_locked(
                conn,
                case_id,
                head.head_seq,
                head.head_hash,
                [
                    (actor, "status_change", *clean_entry_input(actor, "status_change", change)),
                    *((who, kind, *clean_entry_input(who, kind, payload)) for who, kind, payload in then),
                ],
                ts=ts,
                status=new_status,
                status_times=times,
            )
            alert_ids = self._case_alert_ids(conn, case_id)
            return self._to_case(head, alert_ids, status=new_status, status_times=times)

    def set_verdict(self, case_id: str, verdict: Verdict, entries: Sequence[EntryInput] = ()) -> Case:
        """Record the case's verdict; every evidence seq it cites must exist in this case's ledger, else
        `EvidenceError` (and nothing is written). `entries` (the verdict's own ledger entry, the model calls
        that made it, notes on it) are appended in the same transaction, so the case never holds a verdict its
        transcript lacks."""
        items = [(actor, kind, *clean_entry_input(actor, kind, payload)) for actor, kind, payload in entries]
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

    def append(
        self, case_id: str, actor: str, kind: str, payload: LedgerPayload | dict[str, Any]
    ) -> LedgerEntry:
        """Append one entry to the case's chain in its own transaction."""
        [entry] = self.append_many(case_id, [(actor, kind, payload)])
        return entry

    def append_many(self, case_id: str, entries: Iterable[EntryInput]) -> list[LedgerEntry]:
        """Append several entries, consecutive in the chain, in one transaction (all or none)."""
        clean = [(actor, kind, *clean_entry_input(actor, kind, payload)) for actor, kind, payload in entries]
        if not clean:
            return []
        with driver_transaction(self.engine) as driver:
            statements = LedgerStatements(driver, self.engine.dialect.name)
            head = statements.lock_head(case_id)
            if head is None:
                raise CaseNotFoundError(case_id)
            written, rows = _chained(case_id, *head, clean)
            statements.insert(rows)
            statements.move_head(rows[-1])
            return written

    def append_built(
        self, case_id: str, build: Callable[[Connection], Iterable[EntryInput]]
    ) -> list[LedgerEntry]:
        """Append the entries `build` returns, calling it inside the write transaction once the case's head is
        locked: whatever `build` writes on that connection (an action budget taken) commits with the entries
        or not at all."""
        with write_transaction(self.engine) as conn:
            statements = LedgerStatements.on(conn)
            head = statements.lock_head(case_id)
            if head is None:
                raise CaseNotFoundError(case_id)
            clean = [
                (actor, kind, *clean_entry_input(actor, kind, payload))
                for actor, kind, payload in build(conn)
            ]
            return self._append_locked(conn, case_id, *head, clean) if clean else []

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
        written, rows = _chained(case_id, head_seq, head_hash, items, ts)
        statements = LedgerStatements.on(conn)
        statements.insert(rows)
        last = written[-1]
        if case_values:
            move = {"case_id": case_id, "seq": last.seq, "hash": last.hash, "at": last.ts}
            conn.execute(_move_head(tuple(case_values)), move | case_values)
        else:
            statements.move_head(rows[-1])
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

    def entry(self, case_id: str, seq: int) -> LedgerEntry | None:
        """The case's entry at `seq`, or None when the case has no such entry (or no such case): one read by
        the ledger's primary key, where `entries` would read the whole tail from `seq` on."""
        with self._read() as conn:
            row = conn.execute(_ENTRY, {"case_id": case_id, "seq": seq}).first()
        return None if row is None else LedgerEntry.model_validate(row._asdict())

    def head_seq(self, case_id: str) -> int:
        """The seq of the case's last ledger entry (entries are gapless, so 1..head_seq all exist)."""
        with self._read() as conn:
            head = conn.execute(_HEAD_SEQ, {"case_id": case_id}).scalar()
        if head is None:
            raise CaseNotFoundError(case_id)
        return int(head)


# The append path runs these thousands of times a second; building them once skips per-call construction
# and SQLAlchemy's cache-key computation.
_CASE_ROW = select(cases).where(cases.c.id == bindparam("case_id"))
_LOCK_CASE = _CASE_ROW.with_for_update()
_HEAD_SEQ = select(cases.c.head_seq).where(cases.c.id == bindparam("case_id"))
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
_ENTRY = select(ledger).where(ledger.c.case_id == bindparam("case_id"), ledger.c.seq == bindparam("seq"))
_ENTRIES_OF_KIND = _ENTRIES.where(ledger.c.kind == bindparam("kind"))
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


def _chained(
    case_id: str, head_seq: int, head_hash: str, items: Sequence[CleanEntry], ts: datetime | None = None
) -> tuple[list[LedgerEntry], list[EntryRow]]:
    """`items` chained after the head: the entries, and their rows to insert. `ts` stamps the first entry."""
    seq, prev_hash = head_seq, head_hash
    written: list[LedgerEntry] = []
    rows: list[EntryRow] = []
    for actor, kind, payload, payload_text in items:
        seq += 1
        at, ts = ts or utc_now(), None
        at_text = format_ts(at)
        digest = LedgerEntry.hash_of_text(case_id, seq, at_text, actor, kind, payload_text, prev_hash)
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
        rows.append((case_id, seq, at, at_text, actor, kind, payload_text, prev_hash, digest))
        prev_hash = digest
    return written, rows


def _valid_status(status: str) -> str:
    if status not in CASE_STATUSES:
        raise ValueError(f"unknown case status {status!r}; expected one of {sorted(CASE_STATUSES)}")
    return status
