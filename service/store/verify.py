"""Verifying the stored chains: every entry's link and hash, and each chain's end against its case's head."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from soctriage.service.store.base import StoreBase
from soctriage.service.store.chain import CaseVerification, ChainChecker, LedgerProblem, VerifyReport
from soctriage.service.store.schema import cases, ledger
from sqlalchemy import Connection, Row, String, Text, cast, exists, select, type_coerce

# Rows fetched per round trip while verifying: large enough to be fast, small enough to bound memory.
VERIFY_BATCH = 10_000


class ChainVerification(StoreBase):
    """`Store.verify` (part of `Store`)."""

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
