"""Column types whose stored form must round-trip exactly, because ledger hashes are computed over it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from soctriage.service.domain import format_ts
from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp with microseconds.

    PostgreSQL keeps it as `timestamptz` (microsecond precision). SQLite has no time type, so it is stored as
    the canonical `format_ts` string, which sorts in time order and parses back to the same instant.
    Naive datetimes are refused: guessing their zone would silently shift a hashed timestamp.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only accepts timezone-aware timestamps")
        return format_ts(value) if dialect.name == "sqlite" else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).astimezone(UTC)
        return value.astimezone(UTC)
