"""Signed checkpoints of the case ledger: `ledger checkpoint`, `ledger verify --checkpoint` (DESIGN §7).

The hash chain catches an edited entry, but not someone with write access to the database who cuts a case's
tail and moves its head back, re-hashes a case from some seq on, or deletes a case: what they leave behind is a
consistent chain. A checkpoint commits, under a signature the database cannot produce, to every case's head
(case id, head seq, head hash), so a case whose chain no longer passes through its committed head is caught.

The commitments of one origin (signing key + tenant scope) form a transparency log: an append-only RFC 6962
Merkle tree whose leaves are case heads, one appended each time a checkpoint finds a case that is new or whose
head moved, in case-id order. Each checkpoint is a C2SP tlog-checkpoint of that tree, so a later checkpoint
extends an earlier one exactly as the spec demands (the earlier tree is a prefix of the later), a case's latest
commitment is its last leaf, and one inclusion proof ties an exported transcript to a signed root. A checkpoint
is never signed over a store where a committed case was cut back, rewritten or deleted: that is refused,
naming the cases.

Leaves and checkpoints live in the database, shared by every worker, and each checkpoint with the leaves it
added is appended to a JSONL file beside the store: a copy out of the database's reach, which verification
falls back on when the database's head log no longer reproduces a signed root.
"""

from __future__ import annotations

import base64
import bisect
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, NamedTuple

from soctriage.service.config import Settings
from soctriage.service.domain import utc_now
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.errors import StoreError
from soctriage.service.store.merkle import Frontier, inclusion_proof, roots_at
from soctriage.service.store.proof import (
    Checkpoint,
    ProofError,
    VerifierKey,
    head_leaf,
    leaf_hash,
    note_sha256,
    open_checkpoint,
    parse_checkpoint_text,
    split_note,
)
from soctriage.service.store.schema import cases, ledger, ledger_checkpoints, ledger_head_log
from soctriage.service.store.signing import PublicKey, SigningKey, scope_label
from soctriage.service.store.store import Store
from sqlalchemy import Connection, Integer, String, and_, column, insert, select, values
from sqlalchemy.exc import IntegrityError

LOG_FILE_NAME = "ledger-checkpoints.jsonl"
# (case_id, seq) pairs per lookup of committed entries: well under every database's parameter limit.
_LOOKUP_BATCH = 500


def checkpoint_log_path(settings: Settings) -> Path:
    """The append-only copy of every checkpoint this machine signed, beside the store."""
    return settings.home / LOG_FILE_NAME


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


class CheckpointRefused(StoreError):
    """Signing now would commit to a store that no longer extends the last checkpoint."""

    def __init__(self, reason: str, problems: Sequence[CaseProblem] = ()) -> None:
        lines = [reason, *(f"  {problem}" for problem in problems)]
        super().__init__("\n".join(lines))
        self.reason = reason
        self.problems = list(problems)


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


# ---- writing -------------------------------------------------------------------------------------------


def write_checkpoint(
    store: Store,
    key: SigningKey,
    *,
    tenant: str | None = None,
    log_file: Path | None = None,
    only_if_changed: bool = False,
) -> StoredCheckpoint | None:
    """Sign a checkpoint of every case in scope (one tenant, or all) and store it; append it to `log_file`.

    Raises CheckpointRefused, naming the cases, when a case the last checkpoint committed was deleted, cut back
    or rewritten, when the stored log was altered, or when the scope's checkpoints were signed by another key.
    With `only_if_changed`, returns None instead of signing when no case head moved since the last one.
    """
    origin = key.public.origin(tenant)
    with store._read() as conn:
        _refuse_other_keys(conn, tenant, key)
        stored = _stored_checkpoints(conn, origin)
        log = _read_log(conn, origin)
        heads = _current_heads(conn, tenant)
        previous = stored[-1] if stored else None
        _check_log(stored, log, key)
        scope = "" if tenant is None else f" (tenant {tenant})"
        problems = _check_points(conn, _committed(log, stored).values(), heads, scope)
    if problems:
        raise CheckpointRefused(
            f"not signing: {len(problems)} case(s) no longer extend what earlier checkpoints of {origin} "
            "committed",
            problems,
        )
    last = {head.case_id: head for head in log}
    added = [head for case_id, head in sorted(heads.items()) if last.get(case_id) != head]
    if only_if_changed and previous is not None and not added:
        return None
    frontier = Frontier()
    for head in (*log, *added):
        frontier.append(head.leaf())
    at = utc_now().replace(microsecond=0)
    covered = len(last.keys() | heads.keys())
    lines = [origin, str(frontier.size), base64.b64encode(frontier.root()).decode()]
    lines += [f"time {at.strftime('%Y-%m-%dT%H:%M:%SZ')}", f"cases {covered}"]
    if previous is not None:
        lines.append(f"previous {note_sha256(previous.note)}")
    note = key.sign_note("".join(f"{line}\n" for line in lines), origin)
    checkpoint = StoredCheckpoint(
        origin=origin,
        number=previous.number + 1 if previous else 1,
        tenant=tenant,
        tree_size=frontier.size,
        cases=covered,
        created_at=at,
        key_fingerprint=key.public.fingerprint,
        note=note,
    )
    try:
        with write_transaction(store.engine) as conn:
            if added:
                conn.execute(
                    insert(ledger_head_log),
                    [
                        {
                            "origin": origin,
                            "idx": idx,
                            "case_id": h.case_id,
                            "head_seq": h.seq,
                            "head_hash": h.hash,
                        }
                        for idx, h in enumerate(added, start=len(log))
                    ],
                )
            conn.execute(insert(ledger_checkpoints).values(**checkpoint.__dict__))
    except IntegrityError as exc:
        raise CheckpointRefused(
            f"{origin}: another process stored checkpoint #{checkpoint.number} at the same time; try again"
        ) from exc
    if log_file is not None:
        _append_to_file(log_file, checkpoint, len(log), added)
    return checkpoint


def _refuse_other_keys(conn: Connection, tenant: str | None, key: SigningKey) -> None:
    # A different key would start a fresh log for the scope: exactly what someone who swapped the key file
    # after rewriting the store would want. The operator restores the key instead.
    other = conn.execute(
        select(ledger_checkpoints.c.key_fingerprint)
        .where(_scope(tenant), ledger_checkpoints.c.key_fingerprint != key.public.fingerprint)
        .limit(1)
    ).scalar()
    if other is not None:
        raise CheckpointRefused(
            f"the {scope_label(tenant)} checkpoints in this store were signed by key {other[:16]}, but "
            f"{key.path} holds key {key.public.fingerprint[:16]}: restore the original signing key"
        )


def _check_log(stored: Sequence[StoredCheckpoint], log: Sequence[Head], key: SigningKey) -> None:
    """The stored log must be what the stored checkpoints signed: each one's root reproduced by the log cut
    at its size, the last one's size the whole log, each naming the one before, and no case going back."""
    if not stored:
        if log:
            raise CheckpointRefused(f"the head log in the database has {len(log)} leaves but no checkpoint")
        return
    try:
        opened = [open_checkpoint(row.note, [key.public.verifier(row.origin)]) for row in stored]
    except ProofError as exc:
        raise CheckpointRefused(f"a checkpoint in the database does not verify: {exc}") from exc
    roots = roots_at((h.leaf() for h in log), [checkpoint.size for checkpoint in opened])
    for row, checkpoint, before in zip(stored, opened, [None, *opened[:-1]], strict=True):
        if roots.get(checkpoint.size) != checkpoint.root or (
            before is not None and checkpoint.previous != before.note_sha256
        ):
            raise CheckpointRefused(
                f"the head log in the database no longer reproduces {row.label}: it was altered; run "
                "`soctriage ledger verify --all --checkpoint FILE` with a checkpoint kept outside the database"
            )
    if len(log) != opened[-1].size:
        raise CheckpointRefused(
            "the head log in the database has leaves no checkpoint signed: it was altered"
        )
    back = sorted({head.case_id for _, head, _ in _backward_steps(log)})
    if back:
        raise CheckpointRefused(
            f"the signed head log of {stored[-1].origin} has case heads going back (a checkpoint was signed over "
            f"cases that had been cut back or rewritten): {', '.join(back)}; run `soctriage ledger verify --all "
            "--checkpoint FILE` with a checkpoint kept outside the database"
        )


def _append_to_file(path: Path, checkpoint: StoredCheckpoint, first: int, added: Sequence[Head]) -> None:
    record = {
        "origin": checkpoint.origin,
        "number": checkpoint.number,
        "tenant": checkpoint.tenant,
        "first_leaf": first,
        "leaves": [[h.case_id, h.seq, h.hash] for h in added],
        "note": checkpoint.note,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: whole lines from several writers never interleave; fsync: a copy that a crash loses is no copy.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with os.fdopen(fd, "ab") as fh:
        fh.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


# ---- reading the store ---------------------------------------------------------------------------------


def _scope(tenant: str | None) -> Any:
    column = ledger_checkpoints.c.tenant
    return column.is_(None) if tenant is None else column == tenant


def _stored_checkpoints(conn: Connection, origin: str) -> list[StoredCheckpoint]:
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
        .where(_scope(tenant))
        .order_by(ledger_checkpoints.c.created_at.desc(), ledger_checkpoints.c.number.desc())
        .limit(1)
    )
    with store._read() as conn:
        row = conn.execute(query).first()
    return None if row is None else StoredCheckpoint(**row._asdict())


def _read_log(conn: Connection, origin: str) -> list[Head]:
    query = (
        select(ledger_head_log.c.case_id, ledger_head_log.c.head_seq, ledger_head_log.c.head_hash)
        .where(ledger_head_log.c.origin == origin)
        .order_by(ledger_head_log.c.idx)
    )
    return [Head(*row) for row in conn.execution_options(yield_per=10_000).execute(query)]


def _current_heads(conn: Connection, tenant: str | None) -> dict[str, Head]:
    query = select(cases.c.id, cases.c.head_seq, cases.c.head_hash)
    if tenant is not None:
        query = query.where(cases.c.tenant == tenant)
    return {row[0]: Head(*row) for row in conn.execution_options(yield_per=10_000).execute(query)}


class _Point(NamedTuple):
    """A committed head, and the first checkpoint that committed it (for messages)."""

    head: Head
    by: str


def _committed(log: Sequence[Head], stored: Sequence[StoredCheckpoint]) -> dict[str, _Point]:
    """Each case's last commitment in the log (which _check_log found to be exactly what `stored` signed),
    labelled with the checkpoint that made it."""
    sizes = [c.tree_size for c in stored]
    return {head.case_id: _Point(head, _label_of(idx, sizes, stored)) for idx, head in enumerate(log)}


def _label_of(idx: int, sizes: Sequence[int], stored: Sequence[StoredCheckpoint]) -> str:
    """The first checkpoint whose tree holds leaf `idx`."""
    return stored[bisect.bisect_right(sizes, idx)].label


def _check_points(
    conn: Connection, points: Iterable[_Point], heads: dict[str, Head], scope: str
) -> list[CaseProblem]:
    """Every case whose chain no longer passes through a committed head, with what happened to it."""
    problems: dict[str, CaseProblem] = {}
    pending: list[_Point] = []
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


def _rewritten(point: _Point) -> CaseProblem:
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
        heads = _current_heads(conn, None)
        for origin, given in opened.items():
            stored = _stored_checkpoints(conn, origin)
            file_log = _read_file(log_file, origin)
            chain = _chain(report, given, stored, file_log, trusted)
            sources = _Sources(
                _read_log(conn, origin), str(log_file), file_log, [n.checkpoint.size for n in chain]
            )
            points = _check_chain(report, chain, sources)
            if wanted is not None:
                points = [p for p in points if p.head.case_id in wanted]
            report.covered |= {p.head.case_id for p in points}
            report.cases += _check_points(conn, points, heads, "")
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


def _check_chain(report: CheckpointReport, chain: list[_Node], sources: _Sources) -> list[_Point]:
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
    points: dict[Head, _Point] = {}
    for name in sources.names:
        reproduced = [n for n in chain if n.source == name]
        if not reproduced:
            continue
        leaves = sources.leaves(name)
        sizes_here = [n.checkpoint.size for n in reproduced]
        for idx, head in enumerate(leaves[: sizes_here[-1]]):
            position = bisect.bisect_right(sizes_here, idx)
            points.setdefault(head, _Point(head, reproduced[position].label))
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


def _backward_steps(leaves: Sequence[Head]) -> Iterator[tuple[int, Head, int]]:
    """Leaves where a case's head did not move forward: (index, leaf, the highest seq committed before).
    A case's heads only move forward, so each one means a checkpoint was signed over a case that went back."""
    last: dict[str, int] = {}
    for idx, head in enumerate(leaves):
        seen = last.get(head.case_id)
        if seen is not None and head.seq <= seen:
            yield idx, head, seen
        last[head.case_id] = max(head.seq, seen or 0)


def _check_monotonic(report: CheckpointReport, leaves: Sequence[Head], chain: Sequence[_Node]) -> None:
    sizes = [n.checkpoint.size for n in chain]
    for idx, head, seen in _backward_steps(leaves):
        position = bisect.bisect_right(sizes, idx)
        after = chain[position]
        before = chain[position - 1].label if position else "an earlier checkpoint"
        report.problems.append(
            f"{after.label} does not extend {before}: case {head.case_id} goes back from seq {seen} to "
            f"seq {head.seq}"
        )


# ---- proofs for exports and citations for reports ------------------------------------------------------


def case_commitment(store: Store, case_id: str, tenant: str) -> dict[str, Any] | None:
    """The export's `checkpoint` record for a case: the newest checkpoint (its tenant's log, else the
    every-tenant log) committing to it, the committed head, and that head's inclusion proof. None when no
    checkpoint covers the case yet, or the stored log no longer reproduces the checkpoint's root."""
    for scope in (tenant, None):
        row = latest_checkpoint(store, scope)
        if row is None:
            continue
        with store._read() as conn:
            log = _read_log(conn, row.origin)[: row.tree_size]
        indexes = [idx for idx, head in enumerate(log) if head.case_id == case_id]
        _, _, root, _ = parse_checkpoint_text(split_note(row.note)[0])
        leaves = [head.leaf() for head in log]
        if (
            not indexes
            or len(leaves) != row.tree_size
            or roots_at(leaves, [row.tree_size]).get(row.tree_size) != root
        ):
            continue
        index = indexes[-1]
        return {
            "note": row.note,
            "leaf_index": index,
            "head_seq": log[index].seq,
            "head_hash": log[index].hash,
            "inclusion_proof": [base64.b64encode(p).decode() for p in inclusion_proof(leaves, index)],
        }
    return None


@dataclass(frozen=True)
class Citation:
    """The checkpoint an evidence report cites, and how the report's cases stand against it."""

    stored: StoredCheckpoint
    checkpoint: Checkpoint | None
    root_hash: str
    signature: str
    signature_check: str
    covered: int
    problems: list[str]


def cite_checkpoint(
    store: Store,
    tenant: str | None,
    case_ids: Sequence[str],
    public_key: PublicKey | None,
    *,
    check: bool = True,
) -> Citation | None:
    """The newest checkpoint of the report's scope (a tenant's own log, else the every-tenant log), its
    signature checked with `public_key`, and the report's cases checked against it unless `check` is off."""
    row = latest_checkpoint(store, tenant) or (latest_checkpoint(store, None) if tenant is not None else None)
    if row is None:
        return None
    try:
        text, signatures = split_note(row.note)
        root = base64.b64encode(parse_checkpoint_text(text)[2]).decode()
    except ProofError as exc:
        return Citation(row, None, "", "", f"failed: the stored note is malformed ({exc})", 0, [])
    if public_key is None or public_key.fingerprint != row.key_fingerprint:
        checked = "not checked: the signing key of this checkpoint is not available here"
        return Citation(row, None, root, signatures[0].line, checked, 0, [])
    trusted = [public_key.verifier(row.origin)]
    # A checkpoint of exactly the report's scope is checked whole: a case deleted since is gone from the
    # report too, so only the checkpoint can say it existed. Another scope's is checked for the report's cases.
    whole = row.tenant == tenant
    report = (
        verify_checkpoints(store, [(row.label, row.note)], trusted, case_ids=None if whole else case_ids)
        if check
        else CheckpointReport()
    )
    in_report = set(case_ids)
    try:
        checkpoint = open_checkpoint(row.note, trusted)
    except ProofError as exc:
        return Citation(row, None, root, signatures[0].line, f"failed: {exc}", 0, [])
    problems = [*report.problems]
    problems += [str(p) for p in report.cases if p.case_id in in_report or p.kind == "deleted"]
    covered = len(report.covered & in_report)
    return Citation(row, checkpoint, root, checkpoint.signature.line, "verified", covered, problems)
