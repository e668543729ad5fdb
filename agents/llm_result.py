"""What one model call yields: an `LLMResult` holding everything an `llm_call` ledger entry records (the
messages, every HTTP attempt and its outcome, token totals), or an `LLMError` carrying one."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SerializeAsAny
from soctriage.service.ledger_events import LlmCall

Outcome = Literal[
    "ok",
    "malformed",
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "rejected",
    "bad_response",
]
# How much of an error message the ledger keeps.
MAX_ERROR_CHARS = 600


class ToolCall(BaseModel):
    """One function call the model asked for, with its arguments already parsed."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: dict[str, Any]


class Attempt(BaseModel):
    """One HTTP request to the endpoint. `call` is 1 for the first ask, 2 for the corrective re-ask."""

    model_config = ConfigDict(frozen=True)

    call: int
    outcome: Outcome
    status: int | None = None
    error: str | None = None
    latency_ms: float


class LLMResult(BaseModel):
    """Everything an `llm_call` ledger entry needs. Never holds the API key."""

    model_config = ConfigDict(frozen=True)

    model: str
    served_model: str | None = None
    endpoint_name: str
    prompt_hashes: dict[str, str] = {}
    messages: list[dict[str, Any]]
    content: str | None = None
    finish_reason: str | None = None
    parsed: SerializeAsAny[BaseModel] | None = None
    tool_calls: list[ToolCall] = []
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latency_ms: float
    attempts: list[Attempt]
    error: str | None = None

    def ledger_event(self, analyst: str) -> LlmCall:
        """The `llm_call` entry of this call, made for `analyst`."""
        return LlmCall.model_validate({**self.model_dump(mode="json"), "analyst": analyst})


class LLMError(Exception):
    """A model call that produced no usable answer; `result` records what happened, for the ledger."""

    def __init__(self, message: str, result: LLMResult) -> None:
        super().__init__(message)
        self.result = result


class ModelUnavailableError(LLMError):
    """The endpoint failed: transient errors outlasted the retries, or it rejected the request outright.
    Record `result` (redacted), not `last_error`: the raw exception may quote the API key."""

    def __init__(
        self, message: str, result: LLMResult, last_error: BaseException, attempt_count: int
    ) -> None:
        super().__init__(message, result)
        self.last_error = last_error
        self.attempt_count = attempt_count


class ModelOutputError(LLMError):
    """The model answered, but twice not in the required shape (schema or tool-call arguments)."""
