"""The base of every ledger payload model (service/ledger_events.py, notes in service/ledger_notes.py).

A model serialises to exactly the dict its writer built (`as_payload`): only the fields the writer set are
written, so the canonical JSON, and with it every hash of the chain, is unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from soctriage.service.domain import LedgerKind


class LedgerPayload(BaseModel):
    """A payload of one ledger kind. Fields absent from the writer's dict stay absent when written."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    kind: ClassVar[LedgerKind]

    def as_payload(self) -> dict[str, Any]:
        """The payload dict as it is hashed and stored."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)
