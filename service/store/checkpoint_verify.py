"""Verifying signed checkpoints (`ledger verify --checkpoint`): each signature, each checkpoint extending the
one before, every root rebuilt from the stored head log or the file copy beside the store, and every
case still extending the head a checkpoint committed."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from soctriage.service.store.checkpoint_heads import (
    CaseProblem,
    Head,
    Point,
    StoredCheckpoint,
    backward_steps,
    check_points,
    current_heads,
    read_log,
    stored_checkpoints,
)
from soctriage.service.store.merkle import roots_at
from soctriage.service.store.proof import Checkpoint, ProofError, VerifierKey, open_checkpoint
from soctriage.service.store.store import Store

# ---- the file copy -------------------------------------------------------------------------------------


@dataclass
class _FileLog:
    """What the file beside the store holds for one origin: its checkpoints' notes and their leaves."""

    notes: dict[int, str] = field(default_factory=dict)
    leaves: list[list[Any]] = field(default_factory=list)  # as read: [case_id, seq, hash]
    complete: bool = True

    def heads(self) -> list[Head]:
        return [Head(str(c), int(s), str(h)) for c, s, h in self.leaves]


def _read_file(path: Path | None, origin: str) -> _FileLog:
    log = _FileLog()
    if path is None or not path.is_file():
        return log
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
                if record.get("origin") != origin:
                    continue
                if record["first_leaf"] != len(log.leaves):
                    # Another machine appended leaves in between (workers on several hosts share a
                    # PostgreSQL): this file alone cannot rebuild the tree.
                    log.complete = False
                log.notes[int(record["number"])] = str(record["note"])
                log.leaves += record["leaves"]
            except (ValueError, KeyError, TypeError, AttributeError):
                log.complete = False
    return log


# ---- verifying -----------------------------------------------------------------------------------------


@dataclass
class CheckpointReport:
    """What `ledger verify --checkpoint` found: checkpoint-level problems (signature, consistency, the stored
    log) and the cases that no longer extend their committed heads."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cases: list[CaseProblem] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.cases


@dataclass
class _Node:
    """One checkpoint of the chain being checked, and the leaf source that reproduces its root."""

    checkpoint: Checkpoint
    label: str
    number: int | None
    source: str | None = None


def verify_checkpoints(
    store: Store,
    notes: Sequence[tuple[str, str]],
    trusted: Sequence[VerifierKey],
    *,
    case_ids: Sequence[str] | None = None,
    log_file: Path | None = None,
) -> CheckpointReport:
    """Check the store against signed checkpoints (`notes`: label and text of each).

    Each checkpoint's signature must verify with a `trusted` key. The checkpoints given, with every later one
    the store holds for the same origin, must each extend the one before (the earlier tree a prefix of the
    later, no case going back, each naming its predecessor's hash). Then every case they cover (or only
    `case_ids`) must still exist with a chain that passes through every head they committed.
    """
    report = CheckpointReport()
    opened: dict[str, list[tuple[str, Checkpoint]]] = {}
    for label, text in notes:
        try:
            checkpoint = open_checkpoint(text, trusted)
        except ProofError as exc:
            report.problems.append(f"{label}: {exc}")
            continue
        opened.setdefault(checkpoint.origin, []).append((label, checkpoint))
    wanted = None if case_ids is None else set(case_ids)
    with store._read() as conn:
        heads = current_heads(conn, None)
        for origin, given in opened.items():
            stored = stored_checkpoints(conn, origin)
            file_log = _read_file(log_file, origin)
            chain = _chain(report, given, stored, file_log, trusted)
            sources = _Sources(
                read_log(conn, origin), str(log_file), file_log, [n.checkpoint.size for n in chain]
            )
            points = _check_chain(report, chain, sources)
            if wanted is not None:
                points = [p for p in points if p.head.case_id in wanted]
            report.covered |= {p.head.case_id for p in points}
            report.cases += check_points(conn, points, heads, "")
    report.cases = sorted(set(report.cases), key=lambda p: p.case_id)
    return report


def _chain(
    report: CheckpointReport,
    given: list[tuple[str, Checkpoint]],
    stored: list[StoredCheckpoint],
    file_log: _FileLog,
    trusted: Sequence[VerifierKey],
) -> list[_Node]:
    """The given checkpoints and every stored one from the oldest given on, ordered, without repeats."""
    by_note = {row.note: row for row in stored}
    nodes: dict[str, _Node] = {}
    for label, checkpoint in given:
        row = by_note.get(checkpoint.note)
        name = label if row is None else f"{label} ({row.label})"
        nodes[checkpoint.note] = _Node(checkpoint, name, None if row is None else row.number)
    start = min(cp.size for _, cp in given)
    for row in stored:
        if row.note in nodes or row.tree_size < start:
            continue
        try:
            nodes[row.note] = _Node(open_checkpoint(row.note, trusted), row.label, row.number)
        except ProofError as exc:
            report.problems.append(f"{row.label} in the database: {exc}")
    for number, note in sorted(file_log.notes.items()):
        if note not in by_note:
            report.problems.append(
                f"checkpoint #{number} of the file beside the store is not in the database: it was deleted"
            )
    return sorted(nodes.values(), key=lambda n: (n.checkpoint.size, n.number or 0))


class _Sources:
    """The copies of an origin's head log: the database's, then the file's, which is read into leaves and
    hashed only when the database's does not reproduce a checkpoint. `roots(name)` holds the root of a copy
    at every checkpoint size of the chain, so each "does the later extend the earlier" check is a lookup."""

    DATABASE = "the database"

    def __init__(self, database: list[Head], file_name: str, file_log: _FileLog, sizes: list[int]) -> None:
        self._file_name, self._file_log, self._sizes = file_name, file_log, sizes
        self._leaves: dict[str, list[Head]] = {self.DATABASE: database}
        self._roots: dict[str, dict[int, bytes]] = {}

    @property
    def names(self) -> list[str]:
        usable = self._file_log.complete and self._file_log.leaves
        return [self.DATABASE, *([self._file_name] if usable else [])]

    def leaves(self, name: str) -> list[Head]:
        if name not in self._leaves:
            self._leaves[name] = self._file_log.heads()
        return self._leaves[name]

    def roots(self, name: str) -> dict[int, bytes]:
        if name not in self._roots:
            self._roots[name] = roots_at((h.leaf() for h in self.leaves(name)), self._sizes)
        return self._roots[name]


def _check_chain(report: CheckpointReport, chain: list[_Node], sources: _Sources) -> list[Point]:
    """Match each checkpoint to a copy of the log that reproduces its root, check each extends the one before,
    and return every commitment the reproduced checkpoints make."""
    for node in chain:
        node.source = next(
            (
                name
                for name in sources.names
                if sources.roots(name).get(node.checkpoint.size) == node.checkpoint.root
            ),
            None,
        )
        if node.source is None:
            report.problems.append(
                f"{node.label}: no copy of the head log reproduces its root (checked "
                f"{', '.join(sources.names)}): the log was altered, so its cases cannot be checked against it"
            )
        elif node.source != _Sources.DATABASE:
            report.problems.append(
                f"{node.label}: the database's head log no longer reproduces its root (it was altered); "
                f"checked against the copy in {node.source}"
            )
        else:
            report.checked.append(node.label)
    for before, after in pairwise(chain):
        _check_extends(report, before, after, sources)
    points: dict[Head, Point] = {}
    for name in sources.names:
        reproduced = [n for n in chain if n.source == name]
        if not reproduced:
            continue
        leaves = sources.leaves(name)
        sizes_here = [n.checkpoint.size for n in reproduced]
        for idx, head in enumerate(leaves[: sizes_here[-1]]):
            position = bisect.bisect_right(sizes_here, idx)
            points.setdefault(head, Point(head, reproduced[position].label))
        _check_monotonic(report, leaves[: sizes_here[-1]], reproduced)
    return list(points.values())


def _check_extends(report: CheckpointReport, before: _Node, after: _Node, sources: _Sources) -> None:
    earlier, later = before.checkpoint, after.checkpoint
    if (
        before.number is not None
        and after.number == before.number + 1
        and later.previous != earlier.note_sha256
    ):
        report.problems.append(
            f"{after.label} does not name {before.label} as its previous checkpoint: a checkpoint was replaced"
        )
    if after.source is None:
        return
    # The leaves that reproduce the later root must, cut at the earlier size, reproduce the earlier root: the
    # earlier tree is a prefix of the later (RFC 6962 consistency, by recomputation rather than by a proof).
    if sources.roots(after.source).get(earlier.size) == earlier.root:
        return
    changed = ""
    if before.source is not None:
        old, new = sources.leaves(before.source), sources.leaves(after.source)
        differ = sorted({old[i].case_id for i in range(earlier.size) if i >= len(new) or new[i] != old[i]})
        changed = f": its log changes what it committed for {', '.join(differ)}" if differ else ""
    report.problems.append(f"{after.label} does not extend {before.label}{changed}")


def _check_monotonic(report: CheckpointReport, leaves: Sequence[Head], chain: Sequence[_Node]) -> None:
    sizes = [n.checkpoint.size for n in chain]
    for idx, head, seen in backward_steps(leaves):
        position = bisect.bisect_right(sizes, idx)
        after = chain[position]
        before = chain[position - 1].label if position else "an earlier checkpoint"
        report.problems.append(
            f"{after.label} does not extend {before}: case {head.case_id} goes back from seq {seen} to "
            f"seq {head.seq}"
        )
