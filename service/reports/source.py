"""The evidence report over a store: one ordered stream of ledger rows, verified as it goes.

Only the ledger is read for numbers. The cases table is read for two things the ledger does not hold:
which tenant owns a chain (the scope of the report) and the stored head each chain must end at.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, NamedTuple

from soctriage.service.reports.evidence import EvidenceBuilder, EvidenceParams
from soctriage.service.reports.model import EvidenceReport
from soctriage.service.store import Store
from soctriage.service.store.chain import CaseVerification, ChainChecker, LedgerProblem
from soctriage.service.store.schema import cases, ledger
from soctriage.service.store.store import STORED_ENTRY_COLUMNS
from sqlalchemy import and_, or_, select, true

VerifyMode = Literal["full", "previous", "none"]
# Rows per round trip: bounded memory however large the ledger is.
STREAM_BATCH = 10_000
# Kinds whose payload the report never reads. Without verification these rows are not even fetched (only a
# chain's last row is, for its head): on a typical ledger that is two rows in three.
_UNREAD_KINDS = frozenset({"reasoning", "tool_call", "tool_result", "chat_message"})


class _Stored(NamedTuple):
    """A row as stored (ts and payload text), for the chain checker to report when it does not parse."""

    case_id: str
    seq: int
    ts: str
    actor: str
    kind: str
    payload: str
    prev_hash: str
    hash: str


class _Entry(NamedTuple):
    case_id: str
    seq: int
    ts: datetime
    actor: str
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


def _query(params: EvidenceParams, *, every_row: bool) -> Any:
    dated = select(ledger.c.case_id).where(ledger.c.seq == 1, ledger.c.kind == "alert_received")
    if params.since is not None:
        dated = dated.where(ledger.c.ts >= params.since)
    if params.until is not None:
        dated = dated.where(ledger.c.ts < params.until)
    scope = and_(ledger.c.case_id.in_(dated), *([cases.c.tenant == params.tenant] if params.tenant else []))
    return (
        select(
            # As stored (text / json text), parsed below: content that no longer parses is tampering to
            # report, not an exception.
            *STORED_ENTRY_COLUMNS,
            cases.c.head_seq,
            cases.c.head_hash,
        )
        .select_from(ledger.join(cases, cases.c.id == ledger.c.case_id))
        .where(scope)
        .where(
            true()
            if every_row
            else or_(ledger.c.kind.not_in(_UNREAD_KINDS), ledger.c.seq >= cases.c.head_seq)
        )
        .order_by(ledger.c.case_id, ledger.c.seq)
    )


_Row = tuple[str, int, str | datetime, str, str, str, str, str, int, str]


class _Case:
    """One chain being read: its parsed entries, and its checker when verifying."""

    def __init__(self, case_id: str, head: tuple[int, str], verify: bool) -> None:
        self.case_id = case_id
        self.head = head
        self.entries: list[_Entry] = []
        self.checker = ChainChecker(case_id) if verify else None
        self.unparsed = 0

    def add(self, row: _Row) -> None:
        # Runs once per ledger row (millions): one tuple unpack, no attribute lookups on the row.
        case_id, seq, ts_text, actor, kind, payload_text, prev_hash, digest, _, _ = row
        checker = self.checker
        if checker is not None and checker.problem is None:
            # The checker hashes the stored text as it is, so verifying parses nothing the report skips.
            checker.feed(_Stored(*row[:8]))
        try:
            # SQLite hands back the stored text; psycopg a datetime whatever the declared type.
            ts = ts_text if isinstance(ts_text, datetime) else datetime.fromisoformat(ts_text)
            payload = json.loads(payload_text) if kind not in _UNREAD_KINDS else {}
            if not isinstance(payload, dict):
                raise ValueError("payload is not a JSON object")
        except (TypeError, ValueError):
            self.unparsed += 1
            return
        self.entries.append(_Entry(case_id, seq, ts, actor, kind, payload, prev_hash, digest))

    def verification(self, previous: dict[tuple[str, int, str], bool]) -> CaseVerification | None:
        if self.checker is not None:
            problem = self.checker.finish(*self.head)
            return CaseVerification(self.case_id, problem, self.checker.count, *self.head)
        last = self.entries[-1] if self.entries else None
        # An earlier result holds only while neither the chain's end nor the stored head has moved.
        if last is None or (last.seq, last.hash) != self.head:
            return None
        if previous.get((self.case_id, *self.head)):
            return CaseVerification(self.case_id, None, last.seq, *self.head)
        return None


def evidence_from_store(
    store: Store,
    params: EvidenceParams,
    *,
    verify: VerifyMode = "full",
    previous: EvidenceReport | None = None,
) -> EvidenceReport:
    """The report for `params` from `store`, streaming the ledger once.

    verify="full" re-checks every chain in the period against its stored head, in the same pass.
    verify="previous" reuses the results of an earlier report (`previous`) for chains whose end is the
    head that report found intact, and marks the rest not verified; verify="none" checks nothing.
    """
    if verify == "previous" and previous is None:
        raise ValueError("verify='previous' needs the earlier report to take results from")
    carried = {}
    if verify == "previous" and previous is not None:
        carried = {
            (c.case_id, c.head_seq, c.head_hash): c.result == "ok"
            for c in previous.integrity.heads
            if c.head_seq is not None and c.head_hash is not None
        }
    builder = EvidenceBuilder(params)
    current: _Case | None = None

    def flush(case: _Case) -> None:
        check = case.verification(carried)
        if case.unparsed and check is None:
            problem = LedgerProblem(None, f"{case.unparsed} entries no longer parse (edited)")
            check = CaseVerification(case.case_id, problem, len(case.entries), *case.head)
        builder.add_case(case.entries, check)

    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for the whole report, so chains and heads agree while writers keep appending.
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            rows = conn.execution_options(yield_per=STREAM_BATCH).execute(
                _query(params, every_row=verify == "full")
            )
            for row in rows:
                if current is None or row[0] != current.case_id:
                    if current is not None:
                        flush(current)
                    current = _Case(row[0], (row[8], row[9]), verify == "full")
                current.add(row)
            if current is not None:
                flush(current)
    method = {"full": "verified", "previous": "carried_forward", "none": "not_verified"}[verify]
    return builder.report(method, previous.generated_at if previous is not None else None)
