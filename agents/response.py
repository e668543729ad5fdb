"""The life of a proposed action: guard decision, approval request, human decision, idempotent execution.

The guard decides, never the model; a human decision binds to the exact (case, tool, args_hash) the guard saw
and expires; execution checks the ledger's idempotency keys so a resumed or retried run never acts twice.
"""

from __future__ import annotations

from datetime import timedelta

from soctriage.agents.deps import Deps
from soctriage.agents.lifecycle import STATUS_BY_DECISION, SYSTEM, Decision
from soctriage.agents.state import PlannedAction, ProposedAction
from soctriage.service.domain import utc_now
from soctriage.service.ledger_events import (
    ActionExecuted,
    ApprovalDecided,
    ApprovalRequested,
    GuardDecisionRecorded,
    LedgerRecord,
    ToolCallRequested,
)
from soctriage.service.ledger_notes import ApprovalInvalid
from soctriage.tools import Approval, GuardDecision, ToolCall, ToolContext, check_approval
from sqlalchemy import Connection


def plan_actions(
    deps: Deps,
    case_id: str,
    ctx: ToolContext,
    proposals: list[tuple[str, ProposedAction]],
    *,
    actor: str = "response_agent",
    charge: bool = True,
) -> list[PlannedAction]:
    """The guard's decision on each `(action_id, proposal)`; every proposal, decision and approval request
    lands in one ledger transaction.

    An action the policy allows is cleared to run, so it is charged to its tenant's budget in that same
    transaction (`charge`); when the budget is spent it waits for a human instead (a second guard decision
    and an approval request), never silently dropped. The case assistant's proposals always wait for a human,
    so they are not charged (`charge=False`), nor is anything a human approves."""
    decided = [
        (
            action_id,
            proposal,
            deps.guard.decide(ctx, ToolCall(tool=proposal.tool, args=proposal.args, call_id=action_id)),
        )
        for action_id, proposal in proposals
    ]
    planned: list[PlannedAction] = []

    def records(conn: Connection) -> list[LedgerRecord]:
        written: list[LedgerRecord] = []
        for action_id, proposal, decision in decided:
            call = ToolCallRequested(
                action_id=action_id, tool=proposal.tool, args=proposal.args, reason=proposal.reason
            )
            written.append((actor, "tool_call", call))
            action = PlannedAction(
                id=action_id,
                reason=proposal.reason,
                guard=decision,
                status=STATUS_BY_DECISION[decision.decision],
            )
            action, entries = _decided(deps, action, decision)
            written += entries
            held = deps.guard.charge(ctx, decision, within=conn) if charge else None
            if held is not None:
                action, entries = _decided(deps, action, held)
                written += entries
            planned.append(action)
        return written

    if decided:
        deps.store.append_built(case_id, records)
    return planned


def _decided(
    deps: Deps, action: PlannedAction, decision: GuardDecision
) -> tuple[PlannedAction, list[LedgerRecord]]:
    """`action` under the guard's `decision`, and its ledger records: the decision, and the approval request
    (with its deadline) when a human has to decide."""
    recorded = GuardDecisionRecorded.model_validate(
        {"action_id": action.id, **decision.model_dump(mode="json")}
    )
    records: list[LedgerRecord] = [("guard", "guard_decision", recorded)]
    action = action.model_copy(update={"guard": decision, "status": STATUS_BY_DECISION[decision.decision]})
    if action.status == "awaiting_approval":
        expires = utc_now() + timedelta(seconds=deps.guard.policy.approval_ttl_s)
        action = action.model_copy(update={"expires_at": expires})
        request = ApprovalRequested(
            action_id=action.id,
            tool=decision.tool,
            args=decision.args,
            args_hash=decision.args_hash,
            reason=decision.reason,
            expires_at=expires.isoformat(),
        )
        records.append(("guard", "approval_requested", request))
    return action, records


def apply_decision(deps: Deps, case_id: str, action: PlannedAction, decision: Decision) -> PlannedAction:
    """Apply `decision` to the action it names (others pass through): approved or rejected, or expired when
    it came after the request's deadline."""
    if decision.action_id != action.id or action.status != "awaiting_approval":
        return action
    by = decision.by
    if decision.late_for(action):
        deadline = action.expires_at.isoformat() if action.expires_at else ""
        status, outcome = (
            "expired",
            f"no decision before the request expired at {deadline}"
            if decision.ledger_actor == SYSTEM
            else f"decision by {by} came after the request expired at {deadline}",
        )
        approval = None
    else:
        approval = Approval.for_decision(
            action.guard,
            by=by,
            now=decision.at,
            ttl_s=deps.guard.policy.approval_ttl_s,
            approved=decision.approve,
            reason=decision.reason,
        )
        status = "approved" if approval.approved else "rejected"
        outcome = f"{status} by {by}"
    deps.record(
        case_id,
        decision.ledger_actor,
        "approval_decided",
        ApprovalDecided(
            action_id=action.id,
            tool=action.tool,
            args_hash=action.guard.args_hash,
            outcome=status,
            detail=outcome,
            reason=decision.reason,
        ),
    )
    return action.model_copy(update={"status": status, "approval": approval})


async def execute(
    deps: Deps, case_id: str, ctx: ToolContext, action: PlannedAction, executed: set[str]
) -> PlannedAction:
    """Run one cleared action unless the ledger (`executed` keys) says it already ran; record what happened.
    An action the policy allowed was charged to its tenant's budget when it was planned (`plan_actions`)."""
    if action.approval is not None:
        check = check_approval(action.approval, case_id, action.tool, action.guard.args, utc_now())
        if not check.ok:
            status = "expired" if check.status == "expired" else "rejected"
            deps.record(
                case_id,
                "guard",
                "note",
                ApprovalInvalid(action_id=action.id, reason=check.reason, status=status),
            )
            return action.model_copy(update={"status": status})
    outcome = await deps.registry.run(
        ctx,
        action.tool,
        action.guard.args,
        decision=action.guard,
        approval=action.approval,
        executed_keys=executed.__contains__,
    )
    result = outcome.ledger_event(action.id)
    records: list[LedgerRecord] = [("response_agent", "tool_result", result)]
    if outcome.status in ("ok", "simulated"):
        records.append(("response_agent", "action_executed", ActionExecuted.of(result)))
        executed.add(action.guard.idempotency_key)
        status = "executed" if outcome.status == "ok" else "simulated"
    elif outcome.status == "duplicate":
        status = "executed"
    else:
        status = "failed"
    deps.store.append_many(case_id, records)
    return action.model_copy(update={"status": status, "receipt": outcome.output})
