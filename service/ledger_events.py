"""The ledger's payload schema: one pydantic model per `LedgerKind` (`note` payloads, told apart by `event`,
in service/ledger_notes.py; the base every model shares in service/ledger_payload.py).

Writers hand the store one of these models; readers get one back from `LedgerEntry.event()` or `events_of`
instead of reading string keys, and `is_event` tells an entry's model without parsing it.

Two kinds of models, chosen per kind:
- Payloads that are another layer's record dumped whole (the model client's `LLMResult`, the tool
  registry's outcomes and guard decisions, the normalized `Alert`, an analyst's open reasoning fields)
  name the fields the ledger's readers use and keep the rest as they came (`extra="allow"`): the layer
  that builds them stays the one home of their full shape.
- Payloads that exist only as ledger records (notes, chat turns, feedback, approvals, status changes) are
  spelled out in full and refuse unknown fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar, get_args

from pydantic import ConfigDict, Field, TypeAdapter
from soctriage.service.domain import Alert, CaseStatus, Disposition, LedgerKind
from soctriage.service.ledger_notes import Note, NoteEvent
from soctriage.service.ledger_payload import LedgerPayload

P = TypeVar("P", bound=LedgerPayload)


class _Open(LedgerPayload):
    model_config = ConfigDict(extra="allow")


# ---- the case's alert and the analyst ---------------------------------------------------------------


class AlertReceived(_Open):
    """The normalized `Alert` without `raw`, plus the raw text's digest (and how a grouped alert matched)."""

    kind: ClassVar[LedgerKind] = "alert_received"
    id: str
    title: str = ""
    time: str | None = None
    source: dict[str, Any] = Field(default_factory=dict)
    severity: dict[str, Any] = Field(default_factory=dict)
    unmapped: dict[str, Any] = Field(default_factory=dict)
    raw_sha256: str | None = None
    grouping: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, alert: Alert, grouping: list[dict[str, Any]] | None = None) -> AlertReceived:
        """The entry of a new alert: its normalized fields and a digest of raw (raw itself stays in the
        alerts table, so an oversized or hostile record does not bloat every transcript); `grouping` says
        which keys joined it to an open case."""
        payload = alert.model_dump(mode="json", exclude={"raw"})
        payload["raw_sha256"] = hashlib.sha256(alert.raw.encode()).hexdigest()
        if grouping is not None:
            payload["grouping"] = grouping
        # The dump of a validated Alert: validating it again would cost every intake, not guard it.
        return cls.model_construct(_fields_set=set(payload), **payload)

    def alert(self) -> Alert:
        """The normalized alert again, without its raw text (the ledger keeps only the digest)."""
        fields = {k: v for k, v in self.as_payload().items() if k not in ("raw_sha256", "grouping")}
        return Alert.model_validate(fields | {"raw": ""})


class LlmCall(_Open):
    """One model call as the model client recorded it (`LLMResult`), with the analyst that made it."""

    kind: ClassVar[LedgerKind] = "llm_call"
    analyst: str | None = None
    model: str | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latency_ms: int | float | None = None
    error: str | None = None


class Reasoning(_Open):
    """The analyst's first assessment of the alert, with its own reasoning fields."""

    kind: ClassVar[LedgerKind] = "reasoning"
    model: str | None = None
    category: str | None = None
    hypotheses: list[str] = Field(default_factory=list)


class VerdictRecorded(_Open):
    """The case's `Verdict` as decided, by which model, with the analyst's scoring fields."""

    kind: ClassVar[LedgerKind] = "verdict"
    model: str | None = None
    disposition: Disposition
    confidence: int | float
    severity: dict[str, Any] = Field(default_factory=dict)
    summary: str | None = None
    rationale: str | None = None
    evidence: list[int] = Field(default_factory=list)
    raw_confidence: int | float | None = None


# ---- tools, the guard and approvals -----------------------------------------------------------------


class ToolCallRequested(_Open):
    """A tool call an agent asked for (`action_id` when it is a response action)."""

    kind: ClassVar[LedgerKind] = "tool_call"
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    action_id: str | None = None
    reason: str | None = None


class ToolResultRecorded(_Open):
    """The tool registry's outcome of a call."""

    kind: ClassVar[LedgerKind] = "tool_result"
    tool: str
    status: str
    error_kind: str | None = None
    error: str | None = None
    args: dict[str, Any] | None = None
    args_hash: str | None = None
    tier: str | None = None
    output: dict[str, Any] | None = None
    entities: list[Any] = Field(default_factory=list)
    confirmed: list[Any] = Field(default_factory=list)
    action_id: str | None = None
    idempotency_key: str | None = None


class ActionExecuted(ToolResultRecorded):
    """A response action that ran: the same outcome as its `tool_result`."""

    kind: ClassVar[LedgerKind] = "action_executed"
    action_id: str
    idempotency_key: str

    @classmethod
    def of(cls, result: ToolResultRecorded) -> ActionExecuted:
        """The execution record of an action's `tool_result`: the same payload, under its own kind."""
        return cls.model_validate(result.as_payload())


class GuardDecisionRecorded(_Open):
    """The guard's `GuardDecision` on one proposed action."""

    kind: ClassVar[LedgerKind] = "guard_decision"
    action_id: str
    tool: str
    decision: str
    tier: str | None = None
    rule_id: str | None = None
    reason: str = ""
    targets: list[dict[str, Any]] = Field(default_factory=list)


class ApprovalRequested(LedgerPayload):
    kind: ClassVar[LedgerKind] = "approval_requested"
    action_id: str
    tool: str
    args: dict[str, Any]
    args_hash: str
    reason: str | None
    expires_at: str


ApprovalOutcome = Literal["approved", "rejected", "expired"]


class ApprovalDecided(LedgerPayload):
    kind: ClassVar[LedgerKind] = "approval_decided"
    action_id: str
    tool: str
    args_hash: str
    outcome: ApprovalOutcome
    detail: str
    reason: str | None


# ---- people and the case --------------------------------------------------------------------------


class ChatMessage(LedgerPayload):
    """A question to the case assistant (`role` user) or its answer (`role` assistant)."""

    kind: ClassVar[LedgerKind] = "chat_message"
    role: Literal["user", "assistant"]
    text: str
    in_reply_to: int | None = None
    model: str | None = None
    citations: list[int] | None = None
    invalid_citations: list[int] | None = None
    proposals: list[str] | None = None


class FeedbackRule(LedgerPayload):
    id: str
    change: str | None
    status: str


class Feedback(LedgerPayload):
    """An analyst's final disposition of the case, and the suppression rule it taught, if any."""

    kind: ClassVar[LedgerKind] = "feedback"
    disposition: Disposition
    reason_code: str | None = None
    note: str | None = None
    rule: FeedbackRule | None = None


class StatusChange(LedgerPayload):
    kind: ClassVar[LedgerKind] = "status_change"
    from_: CaseStatus = Field(alias="from")
    to: CaseStatus
    reason: str | None


LedgerEvent = (
    AlertReceived
    | LlmCall
    | Reasoning
    | ToolCallRequested
    | ToolResultRecorded
    | GuardDecisionRecorded
    | ApprovalRequested
    | ApprovalDecided
    | ActionExecuted
    | VerdictRecorded
    | ChatMessage
    | Feedback
    | StatusChange
    | NoteEvent
)

# What a writer hands the store for one entry: actor, kind, payload.
LedgerRecord = tuple[str, LedgerKind, LedgerPayload]

_NOTE: TypeAdapter[Note] = TypeAdapter(Note)
_MODELS: dict[str, type[LedgerPayload]] = {m.kind: m for m in get_args(LedgerEvent) if m.kind != "note"}


def parse_event(kind: str, payload: dict[str, Any]) -> LedgerEvent:
    """The typed payload of an entry of `kind`; pydantic's `ValidationError` when it does not fit."""
    if kind == "note":
        return _NOTE.validate_python(payload)
    return _MODELS[kind].model_validate(payload)  # type: ignore[return-value]


class Recorded(Protocol):
    """What `events_of` reads from an entry: a `LedgerEntry`, or a store row with its payload parsed."""

    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


def is_event(entry: Recorded, model: type[LedgerPayload]) -> bool:
    """Whether `model` describes the entry (its kind and, for a note, its event), without parsing it: for
    readers that only count entries, which an old or partial payload must not stop."""
    if entry.kind != model.kind:
        return False
    return model.kind != "note" or entry.payload.get("event") == model.model_fields["event"].default


def events_of(entries: Iterable[Recorded], model: type[P]) -> list[P]:
    """The payloads of the entries `model` describes, as `model`s, in order. Other entries are skipped
    unread, so one reader is never stopped by a payload it does not read."""
    return [model.model_validate(entry.payload) for entry in entries if is_event(entry, model)]


@dataclass(frozen=True)
class TokenTotals:
    """Model usage summed over `llm_call` entries."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, call: LlmCall) -> TokenTotals:
        return cls(1, call.prompt_tokens, call.completion_tokens, call.total_tokens)

    def __add__(self, other: TokenTotals) -> TokenTotals:
        return TokenTotals(
            self.calls + other.calls,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )


def token_totals(calls: Iterable[LlmCall]) -> TokenTotals:
    """The one sum of model usage: every reader that reports tokens adds up `llm_call` entries with this."""
    return sum(map(TokenTotals.of, calls), TokenTotals())
