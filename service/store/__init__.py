"""Case store and hash-chained ledger (DESIGN §2, §6)."""

from soctriage.service.store.chain import (
    CaseVerification,
    LedgerInputError,
    LedgerProblem,
    VerifyReport,
    verify_entries,
)
from soctriage.service.store.engine import store_label
from soctriage.service.store.errors import (
    CaseNotFoundError,
    DuplicateAlertError,
    EvidenceError,
    StoreError,
    StoreNotFoundError,
)
from soctriage.service.store.grouping import Grouping, GroupKey, Joined
from soctriage.service.store.quarantine import QuarantinedRecord
from soctriage.service.store.store import Store

__all__ = [
    "CaseNotFoundError",
    "CaseVerification",
    "DuplicateAlertError",
    "EvidenceError",
    "GroupKey",
    "Grouping",
    "Joined",
    "LedgerInputError",
    "LedgerProblem",
    "QuarantinedRecord",
    "Store",
    "StoreError",
    "StoreNotFoundError",
    "VerifyReport",
    "store_label",
    "verify_entries",
]
