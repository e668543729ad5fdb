"""The signed checkpoints and the head log as the store holds them (service/store/checkpoint.py writes them,
checkpoint_verify.py verifies them), and which cases no longer pass through a head a checkpoint committed:
cut back, rewritten or deleted."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from soctriage.service.store.proof import head_leaf, leaf_hash
from soctriage.service.store.schema import cases, ledger, ledger_checkpoints, ledger_head_log
from soctriage.service.store.store import Store
from sqlalchemy import Connection, Integer, String, and_, column, select, values

# (case_id, seq) pairs per lookup of committed entries: well under every database's parameter limit.
_LOOKUP_BATCH = 500


class Head(NamedTuple):
    """One leaf: a case's chain head as a checkpoint saw it."""

    case_id: str
    seq: int
    hash: str

    def leaf(self) -> bytes:
        return leaf_hash(head_leaf(self.case_id, self.seq, self.hash))


@dataclass(frozen=True)
class CaseProblem:
    case_id: str
    kind: Literal["deleted", "cut back", "rewritten"]
    detail: str

    @property
    def problem(self) -> str:
        return f"{self.kind}: {self.detail}"

    def __str__(self) -> str:
        return f"{self.case_id}: {self.problem}"


@dataclass(frozen=True)
class StoredCheckpoint:
    origin: str
    number: int
    tenant: str | None
    tree_size: int
    cases: int
    created_at: datetime
    key_fingerprint: str
    note: str

    @property
    def label(self) -> str:
        return f"checkpoint #{self.number} of {self.origin}"


def scope_clause(tenant: str | None) -> Any:
    column = ledger_checkpoints.c.tenant
    return column.is_(None) if tenant is None else column == tenant


def stored_checkpoints(conn: Connection, origin: str) -> list[StoredCheckpoint]:
    query = select(ledger_checkpoints).where(ledger_checkpoints.c.origin == origin)
    return [
        StoredCheckpoint(**row._asdict()) for row in conn.execute(query.order_by(ledger_checkpoints.c.number))
    ]


def checkpoint_scopes(store: Store) -> list[str | None]:
    """Every scope with checkpoints: every tenant (None, always), then each tenant with a log of its own."""
    query = select(ledger_checkpoints.c.tenant).where(ledger_checkpoints.c.tenant.is_not(None)).distinct()
    with store._read() as conn:
        return [None, *sorted(conn.execute(query).scalars())]


def latest_checkpoint(store: Store, tenant: str | None) -> StoredCheckpoint | None:
    """The newest checkpoint of the scope (one tenant's, or every tenant's), whatever key signed it."""
    query = (
        select(ledger_checkpoints)
        .where(scope_clause(tenant))
        .order_by(ledger_checkpoints.c.created_at.desc(), ledger_checkpoints.c.number.desc())
        .limit(1)
    )
    with store._read() as conn:
        row = conn.execute(query).first()
    return None if row is None else StoredCheckpoint(**row._asdict())


def read_log(conn: Connection, origin: str) -> list[Head]:
    query = (
        select(ledger_head_log.c.case_id, ledger_head_log.c.head_seq, ledger_head_log.c.head_hash)
        .where(ledger_head_log.c.origin == origin)
        .order_by(ledger_head_log.c.idx)
    )
    return [Head(*row) for row in conn.execution_options(yield_per=10_000).execute(query)]


def current_heads(conn: Connection, tenant: str | None) -> dict[str, Head]:
    query = select(cases.c.id, cases.c.head_seq, cases.c.head_hash)
    if tenant is not None:
        query = query.where(cases.c.tenant == tenant)
    return {row[0]: Head(*row) for row in conn.execution_options(yield_per=10_000).execute(query)}


class Point(NamedTuple):
    """A committed head, and the first checkpoint that committed it (for messages)."""

    head: Head
    by: str


def committed_points(log: Sequence[Head], stored: Sequence[StoredCheckpoint]) -> dict[str, Point]:
    """Each case's last commitment in the log (which _check_log found to be exactly what `stored` signed),
    labelled with the checkpoint that made it."""
    sizes = [c.tree_size for c in stored]
    return {head.case_id: Point(head, _label_of(idx, sizes, stored)) for idx, head in enumerate(log)}


def _label_of(idx: int, sizes: Sequence[int], stored: Sequence[StoredCheckpoint]) -> str:
    """The first checkpoint whose tree holds leaf `idx`."""
    return stored[bisect.bisect_right(sizes, idx)].label


def check_points(
    conn: Connection, points: Iterable[Point], heads: dict[str, Head], scope: str
) -> list[CaseProblem]:
    """Every case whose chain no longer passes through a committed head, with what happened to it."""
    problems: dict[str, CaseProblem] = {}
    pending: list[Point] = []
    for point in sorted(points, key=lambda p: (p.head.case_id, -p.head.seq)):
        committed = point.head
        case_id = committed.case_id
        if case_id in problems:
            continue
        now = heads.get(case_id)
        if now is None:
            problems[case_id] = CaseProblem(
                case_id,
                "deleted",
                f"{point.by} committed it at seq {committed.seq}, and the store{scope} no longer has the case",
            )
        elif now.seq < committed.seq:
            problems[case_id] = CaseProblem(
                case_id,
                "cut back",
                f"{point.by} committed seq {committed.seq}, but the ledger now ends at seq {now.seq}",
            )
        elif now.seq == committed.seq and now.hash != committed.hash:
            problems[case_id] = _rewritten(point)
        elif now.seq > committed.seq:
            pending.append(point)
    found = _entry_hashes(conn, [p.head for p in pending if p.head.case_id not in problems])
    for point in pending:
        committed = point.head
        if committed.case_id in problems:
            continue
        actual = found.get((committed.case_id, committed.seq))
        if actual is None:
            problems[committed.case_id] = CaseProblem(
                committed.case_id, "cut back", f"entry {committed.seq}, which {point.by} committed, is gone"
            )
        elif actual != committed.hash:
            problems[committed.case_id] = _rewritten(point)
    return sorted(problems.values(), key=lambda p: p.case_id)


def _rewritten(point: Point) -> CaseProblem:
    return CaseProblem(
        point.head.case_id,
        "rewritten",
        f"entry {point.head.seq} no longer has the hash {point.by} committed ({point.head.hash[:16]}…): the "
        "chain was re-hashed",
    )


def _entry_hashes(conn: Connection, points: Sequence[Head]) -> dict[tuple[str, int], str]:
    found: dict[tuple[str, int], str] = {}
    pairs = sorted({(p.case_id, p.seq) for p in points})
    for start in range(0, len(pairs), _LOOKUP_BATCH):
        # A join with a VALUES list looks each pair up by the primary key; SQLite scans the whole ledger for
        # a row-value IN list instead.
        batch = pairs[start : start + _LOOKUP_BATCH]
        wanted = values(column("case_id", String), column("seq", Integer), name="wanted").data(batch).cte()
        query = select(ledger.c.case_id, ledger.c.seq, ledger.c.hash).join(
            wanted, and_(ledger.c.case_id == wanted.c.case_id, ledger.c.seq == wanted.c.seq)
        )
        found.update({(row[0], row[1]): row[2] for row in conn.execute(query)})
    return found


def backward_steps(leaves: Sequence[Head]) -> Iterator[tuple[int, Head, int]]:
    """Leaves where a case's head did not move forward: (index, leaf, the highest seq committed before).
    A case's heads only move forward, so each one means a checkpoint was signed over a case that went back."""
    last: dict[str, int] = {}
    for idx, head in enumerate(leaves):
        seen = last.get(head.case_id)
        if seen is not None and head.seq <= seen:
            yield idx, head, seen
        last[head.case_id] = max(head.seq, seen or 0)
