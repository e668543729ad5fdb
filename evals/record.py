"""One scored alert: what the graph decided plus the facts the scorers need, read from the case ledger.

A record is one line of a run's `results.jsonl`; scorers work on records only, so a report can be recomputed
from a run folder without the store.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from soctriage.evals.suite import Expected
from soctriage.service.domain import LedgerEntry
from soctriage.service.ledger_events import (
    AlertReceived,
    GuardDecisionRecorded,
    LlmCall,
    ToolResultRecorded,
    VerdictRecorded,
    events_of,
    token_totals,
)
from soctriage.service.ledger_notes import ModelFallback, PossiblePromptInjection
from soctriage.tools import Scope, default_registry

TAKEN = frozenset({"executed", "simulated", "approved"})
PROPOSED_OK = TAKEN | {"awaiting_approval"}


class ActionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    tool: str
    target: str
    tier: str | None = None
    decision: str
    status: str
    rule_id: str | None = None
    reason: str = ""
    outside_scope: list[str] = Field(
        default_factory=list,
        description="targets outside the alert's provenance when the action was proposed, recomputed from the"
        " ledger independently of the guard's own decision",
    )

    @property
    def taken(self) -> bool:
        """Carried out, simulated in dry-run, or cleared to run: what an unsafe action would have done."""
        return self.status in TAKEN

    @property
    def taken_or_queued(self) -> bool:
        """Taken, or waiting for an approver: a human would be asked to approve it."""
        return self.status in PROPOSED_OK


class CaseRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    note: str | None = None
    expected: Expected
    alert_id: str | None = None
    case_id: str | None = None
    status: str | None = None
    disposition: str | None = None
    severity: str | None = None
    confidence: float | None = None
    techniques: list[str] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    ledger_entries: int = 0
    analyst: str | None = None
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_latency_ms: float = 0.0
    wall_ms: float = 0.0
    injection_markers: list[str] = Field(default_factory=list)
    fallback: str | None = Field(default=None, description="why the case fell back to builtin")
    evidence: list[int] = Field(default_factory=list)
    evidence_missing: list[int] = Field(default_factory=list)
    guard_decisions: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = Field(default=None, description="the alert could not be triaged (or normalized)")

    @property
    def outcome(self) -> str:
        """One line for a progress display."""
        return self.error or f"{self.disposition or '-'} / {self.status or '-'}"

    @property
    def predicted(self) -> str:
        """The disposition; a case without a verdict went to a human undecided, i.e. inconclusive."""
        return self.disposition or "inconclusive"

    @property
    def auto_closed(self) -> bool:
        return self.status == "closed" and self.disposition in ("false_positive", "benign_true_positive")

    @property
    def correct(self) -> bool:
        return self.predicted in self.expected.acceptable


def ledger_facts(entries: list[LedgerEntry]) -> dict[str, Any]:
    """Model usage, guard decisions, injection flags and verdict grounding from one case's ledger."""
    calls = events_of(entries, LlmCall)
    used = token_totals(calls)
    injections = events_of(entries, PossiblePromptInjection)
    fallbacks = events_of(entries, ModelFallback)
    verdicts = events_of(entries, VerdictRecorded)
    evidence = list(verdicts[-1].evidence) if verdicts else []
    shown = {"action_id", "tool", "tier", "decision", "rule_id", "reason"}
    return {
        "llm_calls": used.calls,
        "prompt_tokens": used.prompt_tokens,
        "completion_tokens": used.completion_tokens,
        "model_latency_ms": round(sum(float(c.latency_ms or 0.0) for c in calls), 3),
        "injection_markers": list(injections[-1].markers) if injections else [],
        "fallback": fallbacks[-1].reason if fallbacks else None,
        "evidence": evidence,
        "evidence_missing": sorted(set(evidence) - {e.seq for e in entries}),
        "guard_decisions": [d.model_dump(include=shown) for d in events_of(entries, GuardDecisionRecorded)],
        "analyst": verdicts[-1].model if verdicts else None,
        "outside_scope": _outside_scope(entries),
    }


def _outside_scope(entries: list[LedgerEntry]) -> dict[str, list[str]]:
    """Per action, the targets that were neither in the alert nor found by a lookup before the guard decided."""
    registry = default_registry()
    scope: Scope | None = None
    outside: dict[str, list[str]] = {}
    for entry in entries:
        if entry.kind == "alert_received" and scope is None:
            scope = Scope.of_alert(AlertReceived.model_validate(entry.payload).alert())
        elif scope is None:
            continue
        elif entry.kind == "tool_result":
            result = ToolResultRecorded.model_validate(entry.payload)
            if result.status == "ok":
                found = registry.facts(
                    result.tool, result.args or {}, found=result.entities, confirmed=result.confirmed
                )
                scope = scope.widened(found)
        elif entry.kind == "guard_decision":
            decision = GuardDecisionRecorded.model_validate(entry.payload)
            if targets := [str(t["value"]) for t in decision.targets if t.get("value") not in scope]:
                outside[decision.action_id] = targets
    return outside
