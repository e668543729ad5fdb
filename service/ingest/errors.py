"""What ingestion reports about a record it could not turn into alerts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from soctriage.service.domain import AlertFormat


class IngestError(ValueError):
    """A normalizer's complaint about one record: a human reason and, when one field is at fault, its path."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{reason} (field {field})" if field else reason)
        self.reason = reason
        self.field = field


class Rejection(BaseModel):
    """A record that produced no alert. `raw` keeps the record's original bytes whole, for the quarantine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    line: int
    reason: str
    field: str | None = None
    raw: bytes
    format: AlertFormat | None = None

    def message(self) -> str:
        where = f"{self.source}:{self.line}: {self.reason}"
        return f"{where} (field {self.field})" if self.field else where
