"""What an evidence report is asked for: the entries it reads, and the period, tenant and limits it covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

DEFAULT_NOTIFICATION_WINDOW_H = 72.0
DEFAULT_LIST_LIMIT = 200


class Entry(Protocol):
    """What the report reads from a ledger entry: a `LedgerEntry`, or a store row with parsed fields."""

    @property
    def case_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class EvidenceParams:
    generated_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    tenant: str | None = None
    notification_window_h: float = DEFAULT_NOTIFICATION_WINDOW_H
    list_limit: int = DEFAULT_LIST_LIMIT

    def in_period(self, received_at: datetime) -> bool:
        return (self.since is None or received_at >= self.since) and (
            self.until is None or received_at < self.until
        )


def parse_day(text: str, *, end: bool = False) -> datetime:
    """A CLI/API date: YYYY-MM-DD is a whole UTC day (`end` gives the next midnight, so --until includes
    the day named); a full ISO timestamp is used as given (UTC when it has no zone)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or ISO timestamp") from exc
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if end and len(text) == 10:
        value += timedelta(days=1)
    return value
