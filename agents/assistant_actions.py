"""Actions the case assistant proposes in chat: through the same guard, approval and idempotent execution as
the graph's own (agents/response.py), but carried by the ledger instead of a paused graph.

A proposal writes `tool_call` (actor assistant), `guard_decision` and, unless denied, `approval_requested`:
the assistant never acts on its own, so even an action the guard would allow waits for a human. A pending
proposal moves a finished case to `awaiting_approval`; `soctriage approve` and the decision route then decide
it by its id (C1, C2, ...), and the case returns to its earlier status, or to `contained` when containment
was carried out.
"""

from __future__ import annotations

from datetime import timedelta

from soctriage.agents.deps import Deps
from soctriage.agents.lifecycle import PROPOSAL_PREFIX, Decision, case_actions, containment, pending
from soctriage.agents.response import apply_decision, execute, plan_actions
from soctriage.agents.state import PlannedAction, ProposedAction
from soctriage.service.domain import FINAL_CASE_STATUSES, Alert, Case, LedgerEntry, utc_now
from soctriage.service.ledger_events import ApprovalRequested, StatusChange, ToolResultRecorded, events_of
from soctriage.tools import ToolContext

ACTOR = "assistant"
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


def proposals(entries: list[LedgerEntry]) -> list[PlannedAction]:
    """Every assistant proposal of a case, with its current status."""
    return [a for a in case_actions(entries) if a.id.startswith(PROPOSAL_PREFIX)]


def propose(
    deps: Deps, case: Case, alert: Alert, entries: list[LedgerEntry], proposal: ProposedAction
) -> PlannedAction:
    """Put a proposal through the guard and ask a human for it; the case waits for the decision."""
    number = len(proposals(entries)) + 1
    ctx = case_context(deps, case, alert, entries)
    [action] = plan_actions(
        deps, case.id, ctx, [(f"{PROPOSAL_PREFIX}{number}", proposal)], actor=ACTOR, charge=False
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
    deps: Deps, case: Case, alert: Alert, decision: Decision, *, graph_waiting: bool
) -> PlannedAction:
    """Apply a human decision to a pending proposal and, when approved, carry it out exactly once. When no
    proposal (and no paused graph) is left waiting, the case leaves `awaiting_approval`."""
    entries = deps.store.entries(case.id)
    action = next(a for a in proposals(entries) if a.id == decision.action_id)
    action = apply_decision(deps, case.id, action, decision)
    if action.status == "approved":
        executed = deps.executed_keys(case.id)
        action = await execute(deps, case.id, case_context(deps, case, alert, entries), action, executed)
    if not pending(proposals(deps.store.entries(case.id))) and not graph_waiting:
        status, why = _status_after(deps, entries, action)
        deps.store.set_status(case.id, status, actor="system", reason=why)  # type: ignore[arg-type]
    return action


def _status_after(deps: Deps, entries: list[LedgerEntry], action: PlannedAction) -> tuple[str, str]:
    """Contained when the proposal carried out containment; otherwise the final status the case had before
    the proposal made it wait, or escalated."""
    if containment([action], deps.registry) is not None:
        return "contained", f"{action.id} ({action.tool}) carried out"
    waited = [c for c in events_of(entries, StatusChange) if c.to == "awaiting_approval"]
    if waited and waited[-1].from_ in FINAL_CASE_STATUSES:
        earlier = waited[-1].from_
        return earlier, f"{action.id} {action.status}; back to {earlier}"
    return "escalated", f"{action.id} {action.status}; an analyst owns the case"
