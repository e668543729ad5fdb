"""The evidence report's integrity section: each chain's verification as a row, and one digest of every head."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from soctriage.service.reports.model import CaseIntegrity, Integrity
from soctriage.service.store.chain import CaseVerification


def heads_digest(checks: Iterable[CaseIntegrity]) -> str:
    """One hash an auditor can record for every chain head at once (sorted 'case_id seq hash' lines)."""
    lines = sorted(f"{c.case_id} {c.head_seq} {c.head_hash}\n" for c in checks)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _integrity_row(case_id: str, check: CaseVerification) -> CaseIntegrity:
    return CaseIntegrity(
        case_id=case_id,
        result="ok" if check.ok else "failed",
        entries=check.entries,
        head_seq=check.head_seq,
        head_hash=check.head_hash,
        problem=None if check.problem is None else str(check.problem),
    )


def _integrity(
    checks: list[CaseIntegrity], entries: int, method: str, carried_from: datetime | None
) -> Integrity:
    ordered = sorted(checks, key=lambda c: c.case_id)
    unverified = [c for c in ordered if c.result == "not_verified"]
    failures = [c for c in ordered if c.result == "failed"]
    return Integrity(
        method=method,  # type: ignore[arg-type]
        cases=len(ordered),
        ok=sum(c.result == "ok" for c in ordered),
        failed=len(failures),
        unverified=len(unverified),
        entries=entries,
        heads_digest=heads_digest(ordered) if ordered else None,
        failures=failures,
        heads=ordered,
        carried_from=carried_from,
    )
