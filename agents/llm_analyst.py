"""The analyst backed by an OpenAI-compatible chat model.

Every task is one prompt file rendered with the alert and evidence fenced as untrusted data; answers come back
as pydantic-validated structured output (triage, verdict) or as tool calls (enrichment, response proposals).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from soctriage.agents.analyst import Step, Task
from soctriage.agents.llm import ChatClient
from soctriage.agents.llm_result import LLMResult
from soctriage.agents.prompting import Prompt, fence, load_prompt
from soctriage.agents.state import (
    ActionPlan,
    EnrichmentPlan,
    Finding,
    ProposedAction,
    ToolRequest,
    TriageAssessment,
)
from soctriage.service.domain import Alert, Disposition, Severity, Verdict

ALERT_TEXT_LIMIT = 6000


class VerdictDraft(BaseModel):
    """The verdict as the model states it; severity is a plain OCSF id so strict JSON schemas stay simple."""

    model_config = ConfigDict(extra="forbid")

    disposition: Disposition
    severity_id: int = Field(ge=0, le=6)
    confidence: float = Field(ge=0.0, le=1.0)
    techniques: list[str]
    summary: str
    rationale: str
    evidence: list[int]
    recommended_actions: list[str]

    def to_verdict(self) -> Verdict:
        return Verdict(
            disposition=self.disposition,
            severity=Severity.of(self.severity_id),
            confidence=self.confidence,
            techniques=tuple(self.techniques),
            summary=self.summary,
            rationale=self.rationale,
            evidence=tuple(self.evidence),
            recommended_actions=tuple(self.recommended_actions),
        )


def alert_view(alert: Alert) -> str:
    """The alert as the model sees it: normalized fields plus unmapped vendor fields, without the raw copy."""
    text = alert.model_dump_json(exclude={"raw"}, exclude_none=True)
    return text if len(text) <= ALERT_TEXT_LIMIT else text[:ALERT_TEXT_LIMIT] + " …[truncated]"


def evidence_view(task: Task) -> str:
    items: list[dict[str, Any]] = [{"seq": task.alert_seq, "kind": "alert_received"}]
    items += [_finding_item(f) for f in task.findings]
    if task.injection:
        items.append(
            {"note": "alert text contains instruction-like content", "markers": list(task.injection)}
        )
    return fence("evidence", items)


def _finding_item(finding: Finding) -> dict[str, Any]:
    return {"seq": finding.seq, "tool": finding.tool, "args": finding.args, "result": finding.summary}


class LLMAnalyst:
    def __init__(self, client: ChatClient, label: str) -> None:
        self.client = client
        self.name = label

    async def _ask(
        self,
        prompt: Prompt,
        task: Task,
        *,
        schema: type[BaseModel] | None = None,
        tools: list[dict[str, Any]] | None = None,
        **values: str,
    ) -> LLMResult:
        system = load_prompt("system")
        alert = fence("alert", alert_view(task.alert))
        content = prompt.render(alert=alert, alert_seq=str(task.alert_seq), **values)
        if task.correction:
            content += f"\n\nYour previous answer was rejected: {task.correction}"
        messages = [{"role": "system", "content": system.text}, {"role": "user", "content": content}]
        hashes = {system.name: system.sha256, prompt.name: prompt.sha256}
        return await self.client.complete(messages, schema=schema, tools=tools, prompt_hashes=hashes)

    async def triage(self, task: Task) -> Step[TriageAssessment]:
        result = await self._ask(load_prompt("triage"), task, schema=TriageAssessment)
        return Step(answer=result.parsed, calls=(result.ledger_event(self.name),))

    async def plan_enrichment(self, task: Task) -> Step[EnrichmentPlan]:
        prompt = load_prompt("enrich")
        values = {
            "assessment": fence(
                "assessment", task.assessment.model_dump(mode="json") if task.assessment else {}
            ),
            "evidence": evidence_view(task),
            "step": str(task.step + 1),
            "max_steps": str(task.max_steps),
        }
        result = await self._ask(prompt, task, tools=list(task.tools), **values)
        calls = [ToolRequest(tool=c.name, args=c.arguments) for c in result.tool_calls]
        return Step(answer=EnrichmentPlan(calls=calls), calls=(result.ledger_event(self.name),))

    async def decide(self, task: Task) -> Step[Verdict]:
        values = {
            "assessment": fence(
                "assessment", task.assessment.model_dump(mode="json") if task.assessment else {}
            ),
            "evidence": evidence_view(task),
        }
        result = await self._ask(load_prompt("verdict"), task, schema=VerdictDraft, **values)
        return Step(answer=result.parsed.to_verdict(), calls=(result.ledger_event(self.name),))

    async def respond(self, task: Task) -> Step[ActionPlan]:
        assert task.verdict is not None
        names = ", ".join(t["function"]["name"] for t in task.tools)
        values = {
            "verdict": fence("verdict", task.verdict.model_dump(mode="json")),
            "evidence": evidence_view(task),
            "actions": names,
        }
        result = await self._ask(load_prompt("respond"), task, tools=list(task.tools), **values)
        reason = (result.content or "proposed by the response agent").strip()[:500]
        actions = [ProposedAction(tool=c.name, args=c.arguments, reason=reason) for c in result.tool_calls]
        return Step(answer=ActionPlan(actions=actions), calls=(result.ledger_event(self.name),))
