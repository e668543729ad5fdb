"""Actions the case assistant proposes in chat: through the same guard, approval and idempotent execution as
the graph's own (agents/response.py), but carried by the ledger instead of a paused graph.

A proposal writes `tool_call` (actor assistant), `guard_decision` and, unless denied, `approval_requested`:
the assistant never acts on its own, so even an action the guard would allow waits for a human. A pending
proposal moves a finished case to `awaiting_approval`; `soctriage approve` and the decision route then decide
it by its id (C1, C2, ...), and the case returns to its earlier status, or to `contained` when containment
was carried out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from soctriage.agents.deps import Deps
from soctriage.agents.response import (
    STATUS_BY_DECISION,
    apply_decision,
    decision_value,
    execute,
    plan_actions,
)
from soctriage.agents.state import PlannedAction, ProposedAction, initial_state
from soctriage.service.domain import FINAL_CASE_STATUSES, Alert, Case, LedgerEntry, utc_now
from soctriage.service.ledger_events import (
    ActionExecuted,
    ApprovalDecided,
    ApprovalRequested,
    ToolResultRecorded,
)
from soctriage.tools import GuardDecision, ToolContext

ACTOR = "assistant"
PREFIX = "C"
_PROPOSED_REASON = "the case assistant proposed an action; a human decides it"


def case_context(deps: Deps, case: Case, alert: Alert, entries: list[LedgerEntry]) -> ToolContext:
    """The case as tools see it: the alert's scope, widened by provenance by every successful lookup in its
    ledger (the graph's and the assistant's own, in ledger order)."""
    lookups = [
        (entry.seq, ToolResultRecorded.model_validate(entry.payload))
        for entry in entries
        if entry.kind == "tool_result"
    ]
    results = [
        deps.registry.facts(r.tool, r.args or {}, found=r.entities, confirmed=r.confirmed, seq=seq)
        for seq, r in lookups
        if r.status == "ok"
    ]
    return ToolContext.for_alert(
        case.id,
        case.tenant,
        alert,
        deps.settings,
        deps.connectors,
        dry_run=deps.settings.dry_run,
        results=results,
        rules=deps.rules,
    )


@dataclass(frozen=True)
class ActionTrail:
    """One action of a case as its ledger tells it: the action with its current status, the seqs of every
    entry about it, and the decision a human (or the expiry sweep) made on it."""

    action: PlannedAction
    seqs: tuple[int, ...]
    decided_by: str | None = None  # the ledger actor: human:<name> or system
    decided_at: datetime | None = None
    decision_reason: str | None = None
    decided_seq: int | None = None
    executed_seq: int | None = None


def action_trails(entries: list[LedgerEntry]) -> list[ActionTrail]:
    """Every action of a case, the graph's (A1, A2, ...) and the assistant's (C1, ...), rebuilt from the ledger
    in the order they were proposed."""
    reasons: dict[str, str] = {}
    found: dict[str, ActionTrail] = {}
    for entry in entries:
        action_id = str(entry.payload.get("action_id", ""))
        if not action_id:
            continue
        if entry.kind == "tool_call" and action_id not in found:
            reasons[action_id] = str(entry.payload.get("reason", ""))
        elif entry.kind == "guard_decision" and action_id in reasons and action_id not in found:
            guard = GuardDecision.model_validate({k: v for k, v in entry.payload.items() if k != "action_id"})
            action = PlannedAction(
                id=action_id,
                reason=reasons[action_id],
                guard=guard,
                status=STATUS_BY_DECISION[guard.decision],  # type: ignore[arg-type]
            )
            found[action_id] = ActionTrail(action, (entry.seq - 1, entry.seq))
        elif action_id in found:
            found[action_id] = _advance(found[action_id], entry)
    return list(found.values())


def proposals(entries: list[LedgerEntry]) -> list[PlannedAction]:
    """Every assistant proposal of a case, rebuilt from its ledger entries, with its current status."""
    return [t.action for t in action_trails(entries) if t.action.id.startswith(PREFIX)]


def _advance(trail: ActionTrail, entry: LedgerEntry) -> ActionTrail:
    action = trail.action
    changes: dict[str, object] = {"seqs": (*trail.seqs, entry.seq)}
    match entry.event():
        case ApprovalRequested(expires_at=expires_at):
            expires = datetime.fromisoformat(expires_at)
            action = action.model_copy(update={"status": "awaiting_approval", "expires_at": expires})
        case ApprovalDecided(outcome=outcome, reason=reason):
            action = action.model_copy(update={"status": outcome})
            changes |= {
                "decided_by": entry.actor,
                "decided_at": entry.ts,
                "decision_reason": reason,
                "decided_seq": entry.seq,
            }
        case ActionExecuted(status=status, output=output):
            done = "simulated" if status == "simulated" else "executed"
            action = action.model_copy(update={"status": done, "receipt": output})
            changes["executed_seq"] = entry.seq
        case ToolResultRecorded(status="duplicate"):
            action = action.model_copy(update={"status": "executed"})
        case ToolResultRecorded(status=status) if status not in ("ok", "simulated"):
            action = action.model_copy(update={"status": "failed"})
    return dataclasses.replace(trail, action=action, **changes)  # type: ignore[arg-type]


def propose(
    deps: Deps, case: Case, alert: Alert, entries: list[LedgerEntry], proposal: ProposedAction
) -> PlannedAction:
    """Put a proposal through the guard and ask a human for it; the case waits for the decision."""
    number = len(proposals(entries)) + 1
    ctx = case_context(deps, case, alert, entries)
    [action] = plan_actions(
        deps, initial_state(case.id, case.tenant), ctx, [(f"{PREFIX}{number}", proposal)], actor=ACTOR
    )
    if action.status == "approved":
        # The guard would let it run, but nobody asked for it but the model: a human confirms first.
        expires = utc_now() + timedelta(seconds=deps.guard.policy.approval_ttl_s)
        deps.record(
            case.id,
            "guard",
            "approval_requested",
            ApprovalRequested(
                action_id=action.id,
                tool=action.guard.tool,
                args=action.guard.args,
                args_hash=action.guard.args_hash,
                reason=f"{_PROPOSED_REASON} (guard: {action.guard.reason})",
                expires_at=expires.isoformat(),
            ),
        )
        action = action.model_copy(update={"status": "awaiting_approval", "expires_at": expires})
    if action.status == "awaiting_approval" and case.status in FINAL_CASE_STATUSES:
        deps.store.set_status(
            case.id, "awaiting_approval", actor="guard", reason=f"{action.id}: {_PROPOSED_REASON}"
        )
    return action


async def decide_proposal(
    deps: Deps,
    case: Case,
    alert: Alert,
    action_id: str,
    *,
    approve: bool,
    by: str,
    reason: str | None,
    at: datetime | None,
    graph_waiting: bool,
    actor: str | None = None,
) -> PlannedAction:
    """Apply a human decision to a pending proposal and, when approved, carry it out exactly once."""
    entries = deps.store.entries(case.id)
    action = next(a for a in proposals(entries) if a.id == action_id)
    decision = decision_value(action_id, approve=approve, by=by, reason=reason, at=at, actor=actor)
    state = initial_state(case.id, case.tenant)
    action = apply_decision(deps, state, action, decision)
    if action.status == "approved":
        executed = deps.executed_keys(case.id)
        action = await execute(deps, state, case_context(deps, case, alert, entries), action, executed)
    still_pending = [a for a in proposals(deps.store.entries(case.id)) if a.status == "awaiting_approval"]
    if not still_pending and not graph_waiting:
        status, why = _status_after(deps, entries, action)
        deps.store.set_status(case.id, status, actor="system", reason=why)  # type: ignore[arg-type]
    return action


def _status_after(deps: Deps, entries: list[LedgerEntry], action: PlannedAction) -> tuple[str, str]:
    if action.status in ("executed", "simulated") and deps.registry.get(action.tool).contains:
        return "contained", f"{action.id} ({action.tool}) carried out"
    for entry in reversed(entries):
        if entry.kind == "status_change" and entry.payload.get("to") == "awaiting_approval":
            earlier = str(entry.payload.get("from"))
            if earlier in FINAL_CASE_STATUSES:
                return earlier, f"{action.id} {action.status}; back to {earlier}"
            break
    return "escalated", f"{action.id} {action.status}; an analyst owns the case"
