"""Signed checkpoints cited as evidence: a case export's inclusion proof of its head, and the checkpoint an
evidence report cites for its cases, checked."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from soctriage.service.store.checkpoint_heads import StoredCheckpoint, latest_checkpoint, read_log
from soctriage.service.store.checkpoint_verify import CheckpointReport, verify_checkpoints
from soctriage.service.store.merkle import inclusion_proof, roots_at
from soctriage.service.store.proof import (
    Checkpoint,
    ProofError,
    open_checkpoint,
    parse_checkpoint_text,
    split_note,
)
from soctriage.service.store.signing import PublicKey
from soctriage.service.store.store import Store


def case_commitment(store: Store, case_id: str, tenant: str) -> dict[str, Any] | None:
    """The export's `checkpoint` record for a case: the newest checkpoint (its tenant's log, else the
    every-tenant log) committing to it, the committed head, and that head's inclusion proof. None when no
    checkpoint covers the case yet, or the stored log no longer reproduces the checkpoint's root."""
    for scope in (tenant, None):
        row = latest_checkpoint(store, scope)
        if row is None:
            continue
        with store._read() as conn:
            log = read_log(conn, row.origin)[: row.tree_size]
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
