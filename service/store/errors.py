"""The store's own errors."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of the store's own errors."""


class StoreNotFoundError(StoreError, LookupError):
    """A command that only reads found no store where the settings point: it never creates one."""

    def __init__(self, label: str) -> None:
        super().__init__(
            f"no store at {label}: nothing has been triaged there yet (set SOCTRIAGE_HOME or"
            " SOCTRIAGE_DATABASE_URL to the store you mean)"
        )
        self.label = label


class CaseNotFoundError(StoreError, LookupError):
    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id!r} does not exist")
        self.case_id = case_id


class DuplicateAlertError(StoreError):
    """The alert is already stored: a re-delivery must join its existing case, not open another."""

    def __init__(self, alert_id: str, case_id: str, tenant: str) -> None:
        super().__init__(f"alert {alert_id!r} is already stored in case {case_id!r} (tenant {tenant!r})")
        self.alert_id = alert_id
        self.case_id = case_id
        self.tenant = tenant


class EvidenceError(StoreError, ValueError):
    """A verdict cites ledger entries its case does not have."""

    def __init__(self, case_id: str, missing: list[int], head_seq: int) -> None:
        super().__init__(
            f"verdict for {case_id} cites ledger seq {missing}, but the ledger has 1..{head_seq}"
        )
        self.case_id = case_id
        self.missing = missing
        self.head_seq = head_seq
