"""The analyst interface every model implements, and the tasks it is asked to do.

A node hands the analyst a typed task and gets back a typed answer plus the model calls that produced it, so the
node can write them to the ledger. The builtin rules, an OpenAI-compatible model and a replay of recorded
answers all implement this one protocol, which is what lets evals swap them freely.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from soctriage.agents.state import ActionPlan, EnrichmentPlan, Finding, TriageAssessment
from soctriage.service.domain import Alert, Verdict
from soctriage.service.ledger_events import LlmCall

Answer = TypeVar("Answer", bound=BaseModel)


class Step(BaseModel, Generic[Answer]):
    """An analyst's answer, the model calls behind it (ledger `llm_call` payloads) and its reasoning."""

    model_config = ConfigDict(frozen=True)

    answer: Answer
    calls: tuple[LlmCall, ...] = ()
    reasoning: dict[str, Any] = Field(default_factory=dict)


class Task(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    alert: Alert
    alert_seq: int
    injection: tuple[str, ...] = ()
    assessment: TriageAssessment | None = None
    findings: tuple[Finding, ...] = ()
    step: int = 0
    max_steps: int = 0
    tools: tuple[dict[str, Any], ...] = Field(default=(), description="OpenAI schemas of the tools on offer")
    verdict: Verdict | None = None
    correction: str | None = Field(default=None, description="why the previous answer was rejected")


class Analyst(Protocol):
    name: str

    async def triage(self, task: Task) -> Step[TriageAssessment]: ...

    async def plan_enrichment(self, task: Task) -> Step[EnrichmentPlan]: ...

    async def decide(self, task: Task) -> Step[Verdict]: ...

    async def respond(self, task: Task) -> Step[ActionPlan]: ...
