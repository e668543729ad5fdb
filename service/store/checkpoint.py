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

Writing and reading the log are here; verifying checkpoints is checkpoint_verify.py, and citing them (an
export's inclusion proof, a report's checkpoint) is checkpoint_citation.py.
"""

from __future__ import annotations

import base64
import bisect
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from soctriage.service.config import Settings
from soctriage.service.domain import utc_now
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.errors import StoreError
from soctriage.service.store.merkle import Frontier, roots_at
from soctriage.service.store.proof import ProofError, head_leaf, leaf_hash, note_sha256, open_checkpoint
from soctriage.service.store.schema import cases, ledger, ledger_checkpoints, ledger_head_log
from soctriage.service.store.signing import SigningKey, scope_label
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


def _backward_steps(leaves: Sequence[Head]) -> Iterator[tuple[int, Head, int]]:
    """Leaves where a case's head did not move forward: (index, leaf, the highest seq committed before).
    A case's heads only move forward, so each one means a checkpoint was signed over a case that went back."""
    last: dict[str, int] = {}
    for idx, head in enumerate(leaves):
        seen = last.get(head.case_id)
        if seen is not None and head.seq <= seen:
            yield idx, head, seen
        last[head.case_id] = max(head.seq, seen or 0)
