"""The ledger's `note` payloads: what happened beside the main path (a model fallback, an injection flag, a
grouped alert, an approval that no longer held...), one model per note, told apart by `event`.

`Note` is their discriminated union, which `parse_event` (service/ledger_events.py) reads a note entry by.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field
from soctriage.service.domain import Disposition, LedgerKind
from soctriage.service.ledger_payload import LedgerPayload


class _Note(LedgerPayload):
    kind: ClassVar[LedgerKind] = "note"
    event: str

    def as_payload(self) -> dict[str, Any]:
        # `event` is a default the writer never spells out, and it must be written all the same.
        return {"event": self.event} | super().as_payload()


class ModelFallback(_Note):
    """The model endpoint failed or answered unusably; the builtin analyst took over."""

    event: Literal["model_fallback"] = "model_fallback"
    from_: str = Field(alias="from")
    reason: str


class PossiblePromptInjection(_Note):
    event: Literal["possible_prompt_injection"] = "possible_prompt_injection"
    markers: list[str]
    effect: str


class VerdictRejected(_Note):
    event: Literal["verdict_rejected"] = "verdict_rejected"
    reason: str


class AutoCloseFloor(_Note):
    """A benign verdict that may not close the case by itself."""

    event: Literal["auto_close_floor"] = "auto_close_floor"
    disposition: Disposition
    reason: str


class IndexFailed(_Note):
    event: Literal["index_failed"] = "index_failed"
    reason: str


class GroupedAlert(_Note):
    """An alert that joined this case, what new evidence it adds, and what the case does about it."""

    event: Literal["grouped_alert"] = "grouped_alert"
    alert_id: str
    adds: dict[str, list[str]]
    outcome: str
    escalation: str | None

    @property
    def retriage(self) -> bool:
        return self.outcome == "retriage"


class ApprovalInvalid(_Note):
    """A human's approval no longer held when the action was about to run; nothing was done."""

    event: Literal["approval_invalid"] = "approval_invalid"
    action_id: str
    reason: str
    # Written since the action lifecycle reads it back; older entries say it only in `reason`.
    status: Literal["expired", "rejected"] | None = None

    @property
    def outcome(self) -> Literal["expired", "rejected"]:
        return self.status or ("expired" if "expired" in self.reason else "rejected")


class ApprovalExpired(_Note):
    """The expiry sweep queued an `expired` decision for this request."""

    event: Literal["approval_expired"] = "approval_expired"
    action_id: str
    expired_at: str


class DecisionRefused(_Note):
    event: Literal["decision_refused"] = "decision_refused"
    outcome: Literal["refused"]
    action_id: str
    reason: str


class SuppressionRuleChanged(_Note):
    """A suppression rule made active or revoked, as it then stood."""

    event: Literal["suppression_rule"] = "suppression_rule"
    change: str | None
    why: str
    rule_id: str
    match: dict[str, Any]
    disposition: Disposition
    author: str
    source_cases: list[str]
    expires_at: str | None


NoteEvent = (
    ModelFallback
    | PossiblePromptInjection
    | VerdictRejected
    | AutoCloseFloor
    | IndexFailed
    | GroupedAlert
    | ApprovalInvalid
    | ApprovalExpired
    | DecisionRefused
    | SuppressionRuleChanged
)
Note = Annotated[NoteEvent, Field(discriminator="event")]
