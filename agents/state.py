"""Graph state: a small TypedDict whose values are frozen pydantic models (DESIGN §10).

The state is what LangGraph checkpoints to resume a run; the ledger, not this state, is the evidence. The alert
is not in it: every checkpoint would carry a copy. It names the alert by its `alert_received` entry
(`case_id`, `alert_seq`), and nodes read it through `Deps.alert`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal, TypedDict, TypeVar, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, Field
from soctriage.service.domain import Disposition, Verdict
from soctriage.tools.guard import Approval, GuardDecision
from soctriage.tools.tool_spec import ToolOutput

Output = TypeVar("Output", bound=ToolOutput)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Category = Literal[
    "malware",
    "credential_access",
    "execution",
    "persistence",
    "lateral_movement",
    "command_and_control",
    "exfiltration",
    "impact",
    "defense_evasion",
    "discovery",
    "initial_access",
    "policy",
    "test",
    "other",
]


class TriageAssessment(Frozen):
    category: Category
    initial_severity: int = Field(ge=0, le=6, description="OCSF severity_id")
    hypotheses: list[str]
    enrichments: list[str] = Field(description="names of the enrichment tools worth calling")
    rationale: str


class ToolRequest(Frozen):
    tool: str
    args: dict[str, Any]


class EnrichmentPlan(Frozen):
    calls: list[ToolRequest] = Field(description="tool calls to make next; empty when enough evidence")
    final: bool = Field(
        default=False, description="go to the verdict after these calls, without another round"
    )


class ProposedAction(Frozen):
    tool: str
    args: dict[str, Any]
    reason: str


class ActionPlan(Frozen):
    actions: list[ProposedAction]


class Finding(Frozen):
    """One enrichment result, with the ledger seq of its tool_result entry so verdicts can cite it.

    The output is kept as JSON, as the ledger keeps it: the checkpoint serializer revives only the types
    `checkpoint_types` names, and every tool has its own. Readers get it typed from `output_as`."""

    seq: int
    tool: str
    args: dict[str, Any]
    ok: bool
    summary: str
    output: dict[str, Any] = Field(default_factory=dict)
    entities: tuple[str, ...] = Field(default=(), description="entities the tool found about its subjects")
    confirmed: tuple[str, ...] = Field(default=(), description="entities the tool confirmed as threats")

    def output_as(self, model: type[Output]) -> Output:
        """The output as `model`, its tool's output model (a successful finding's; raises `ValidationError`
        for another tool's)."""
        return model.model_validate(self.output)


ActionStatus = Literal[
    "denied", "awaiting_approval", "approved", "rejected", "expired", "executed", "simulated", "failed"
]


class PlannedAction(Frozen):
    """A proposed action, the guard's decision on it, and where it is in its lifecycle.

    `approved` means cleared to run: by policy (`approval` is None) or by a human (`approval` set).
    """

    id: str
    reason: str
    guard: GuardDecision
    status: ActionStatus
    expires_at: datetime | None = Field(default=None, description="deadline for a human decision")
    approval: Approval | None = None
    receipt: dict[str, Any] | None = None

    @property
    def tool(self) -> str:
        return self.guard.tool

    @property
    def target(self) -> str:
        return ", ".join(t.value for t in self.guard.targets) or self.guard.tool


class TriageState(TypedDict, total=False):
    case_id: str
    tenant: str
    alert_seq: int
    model: str
    assessment: TriageAssessment
    findings: tuple[Finding, ...]
    enrich_steps: int
    verdict: Verdict
    verdict_attempts: int
    verdict_correction: str | None
    actions: tuple[PlannedAction, ...]
    escalation: str | None
    injection: tuple[str, ...]
    prior_verdict: Verdict | None


DISPOSITIONS_AUTO_CLOSE: frozenset[Disposition] = frozenset({"false_positive", "benign_true_positive"})


def initial_state(case_id: str, tenant: str, alert_seq: int = 1) -> TriageState:
    """Where every run of a case starts: its alert is ledger entry 1 (written when the case is opened), or the
    `alert_received` entry of a grouped alert that triages the case again."""
    return {"case_id": case_id, "tenant": tenant, "alert_seq": alert_seq}


def checkpoint_types() -> list[tuple[str, str]]:
    """(module, name) of every class a checkpoint may hold: the serializer refuses to revive anything else."""
    found: dict[type, None] = {}

    def walk(tp: Any) -> None:
        for arg in get_args(tp):
            walk(arg)
        if isinstance(tp, type) and tp not in found and issubclass(tp, (BaseModel, Enum)):
            found[tp] = None
            if issubclass(tp, BaseModel):
                for info in tp.model_fields.values():
                    walk(info.annotation)

    for hint in get_type_hints(TriageState).values():
        walk(hint)
    return [(tp.__module__, tp.__qualname__) for tp in found]
