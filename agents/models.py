"""Choose the analyst named by `SOCTRIAGE_MODEL`: builtin, openai:<model> or replay:<dir>."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx2
from pydantic import BaseModel
from soctriage.agents.analyst import Analyst
from soctriage.agents.builtin import BuiltinAnalyst
from soctriage.agents.llm import ChatClient
from soctriage.agents.llm_analyst import LLMAnalyst
from soctriage.agents.llm_result import LLMResult, ModelOutputError
from soctriage.service.config import ConfigError, Settings
from soctriage.service.domain import canonical_json
from soctriage.service.ledger_events import LlmCall


class ModelConfigError(ConfigError):
    """SOCTRIAGE_MODEL names something we cannot build."""


def make_analyst(settings: Settings, http_client: httpx2.AsyncClient | None = None) -> Analyst:
    spec = settings.model
    if spec == "builtin":
        return BuiltinAnalyst()
    if spec.startswith("openai:") and spec.removeprefix("openai:"):
        return LLMAnalyst(ChatClient.from_settings(settings, http_client=http_client), label=spec)
    if spec.startswith("replay:") and spec.removeprefix("replay:"):
        return LLMAnalyst(ReplayClient(Path(spec.removeprefix("replay:"))), label=spec)
    raise ModelConfigError(f"SOCTRIAGE_MODEL={spec!r}: expected builtin, openai:<model> or replay:<dir>")


def request_key(messages: list[dict[str, Any]]) -> str:
    """What a recorded answer is filed under: the first request of a call (system + user message)."""
    return hashlib.sha256(canonical_json(messages[:2]).encode()).hexdigest()


class ReplayClient:
    """Serves model answers recorded in ledger exports (`ledger export --format jsonl`) instead of calling a model.

    A request is answered only if exactly the same prompt was recorded: a changed prompt file or different tool
    results make it miss, which the graph treats like an unusable answer (fallback to builtin, escalated).
    """

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ModelConfigError(f"SOCTRIAGE_MODEL=replay:{folder}: the replay folder does not exist")
        self.recorded: dict[str, LLMResult] = {}
        for path in sorted(folder.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                if entry.get("kind") != "llm_call":
                    continue
                call = LlmCall.model_validate(entry["payload"])
                if call.messages:
                    payload = {k: v for k, v in call.as_payload().items() if k != "parsed"}
                    result = LLMResult.model_validate(payload)
                    self.recorded.setdefault(request_key(result.messages), result)

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: type[BaseModel] | None = None,
        tools: list[dict[str, Any]] | None = None,
        prompt_hashes: dict[str, str] | None = None,
    ) -> LLMResult:
        recorded = self.recorded.get(request_key(messages))
        if recorded is None:
            empty = LLMResult.model_validate(
                {
                    "model": "replay",
                    "endpoint_name": "replay",
                    "messages": messages,
                    "latency_ms": 0.0,
                    "attempts": [],
                    "error": "no recorded answer for this request",
                }
            )
            raise ModelOutputError("no recorded answer for this request", empty)
        parsed = schema.model_validate_json(recorded.content) if schema and recorded.content else None
        return recorded.model_copy(update={"parsed": parsed})
