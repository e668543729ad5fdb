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

Writing the log is here; reading it, and checking cases against the heads it committed, is
checkpoint_heads.py; verifying checkpoints is checkpoint_verify.py, and citing them (an export's inclusion
proof, a report's checkpoint) is checkpoint_citation.py.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from pathlib import Path

from soctriage.service.config import Settings
from soctriage.service.domain import utc_now
from soctriage.service.store.checkpoint_heads import (
    CaseProblem,
    Head,
    StoredCheckpoint,
    backward_steps,
    check_points,
    committed_points,
    current_heads,
    read_log,
    scope_clause,
    stored_checkpoints,
)
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.errors import StoreError
from soctriage.service.store.merkle import Frontier, roots_at
from soctriage.service.store.proof import ProofError, note_sha256, open_checkpoint
from soctriage.service.store.schema import ledger_checkpoints, ledger_head_log
from soctriage.service.store.signing import SigningKey, scope_label
from soctriage.service.store.store import Store
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

LOG_FILE_NAME = "ledger-checkpoints.jsonl"


def checkpoint_log_path(settings: Settings) -> Path:
    """The append-only copy of every checkpoint this machine signed, beside the store."""
    return settings.home / LOG_FILE_NAME


class CheckpointRefused(StoreError):
    """Signing now would commit to a store that no longer extends the last checkpoint."""

    def __init__(self, reason: str, problems: Sequence[CaseProblem] = ()) -> None:
        lines = [reason, *(f"  {problem}" for problem in problems)]
        super().__init__("\n".join(lines))
        self.reason = reason
        self.problems = list(problems)


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
        stored = stored_checkpoints(conn, origin)
        log = read_log(conn, origin)
        heads = current_heads(conn, tenant)
        previous = stored[-1] if stored else None
        _check_log(stored, log, key)
        scope = "" if tenant is None else f" (tenant {tenant})"
        problems = check_points(conn, committed_points(log, stored).values(), heads, scope)
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
        .where(scope_clause(tenant), ledger_checkpoints.c.key_fingerprint != key.public.fingerprint)
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
    back = sorted({head.case_id for _, head, _ in backward_steps(log)})
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
