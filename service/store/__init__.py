"""Case store and hash-chained ledger (DESIGN §2, §6)."""

from soctriage.service.store.chain import (
    CaseVerification,
    LedgerInputError,
    LedgerProblem,
    VerifyReport,
    verify_entries,
)
from soctriage.service.store.store import (
    CaseNotFoundError,
    DuplicateAlertError,
    EvidenceError,
    QuarantinedRecord,
    Store,
    StoreError,
)

__all__ = [
    "CaseNotFoundError",
    "CaseVerification",
    "DuplicateAlertError",
    "EvidenceError",
    "LedgerInputError",
    "LedgerProblem",
    "QuarantinedRecord",
    "Store",
    "StoreError",
    "VerifyReport",
    "verify_entries",
]
