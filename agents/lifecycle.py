"""One action lifecycle for the graph's actions (A1, A2, ...) and the case assistant's (C1, ...):
proposed → guard decision → (awaiting a human → approved / rejected / expired) → executed / simulated / failed.

The ledger is the one record of it. `action_trails` reads every action of a case back from its ledger, so the
API, the console, the worker's expiry sweep and the assistant all see the same pending actions whichever part
of the system proposed them; a human's decision is one command type (`Decision`) from the face that takes it
to the graph or the proposal it resumes; `decidable` is the one check that an action may be decided now, and
`containment` the one rule by which carried-out actions make a case `contained`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field
from soctriage.agents.state import Frozen, PlannedAction
from soctriage.service.domain import DECIDABLE_CASE_STATUSES, Case, LedgerEntry, utc_now
from soctriage.service.ledger_events import (
    ActionExecuted,
    ApprovalDecided,
    ApprovalRequested,
    GuardDecisionRecorded,
    LedgerEvent,
    ToolCallRequested,
    ToolResultRecorded,
)
from soctriage.service.ledger_notes import ApprovalInvalid, DecisionRefused
from soctriage.service.store import Store
from soctriage.tools import GuardDecision, Registry

# The ledger actor of decisions nobody made: an approval request that ran out of time.
SYSTEM = "system"
# Where an action stands right after the guard's decision on it.
STATUS_BY_DECISION = {"allow": "approved", "needs_approval": "awaiting_approval", "deny": "denied"}
# The case assistant's proposals are numbered C1, C2, ...; the graph's A1, A2, ...
PROPOSAL_PREFIX = "C"


class Decision(Frozen):
    """A decision on one pending action, as every face hands it on: to the queue (as JSON), to the graph it
    resumes, or to the assistant's proposal. `at` is when it was made; the request's expiry is judged against
    it, not against when a worker got round to applying it."""

    action_id: str
    approve: bool
    by: str = Field(description="who decided: a key or person name, or the approval deadline")
    reason: str | None = None
    at: datetime = Field(default_factory=utc_now)
    actor: str | None = Field(default=None, description="the ledger actor when it is not human:<by>")

    @property
    def ledger_actor(self) -> str:
        return self.actor or f"human:{self.by}"

    @classmethod
    def expiry(cls, action_id: str, now: datetime) -> Decision:
        """The decision the approval-expiry sweep makes for a request nobody answered in time."""
        reason = "no approver decided before the request expired"
        return cls(
            action_id=action_id, approve=False, by="approval deadline", reason=reason, at=now, actor=SYSTEM
        )

    def late_for(self, action: PlannedAction) -> bool:
        return overdue(action, self.at)


def overdue(action: PlannedAction, now: datetime) -> bool:
    """Whether `action`'s approval request had expired by `now` (an action without a deadline never does)."""
    return action.expires_at is not None and now >= action.expires_at


class NotDecidable(ValueError):
    """A decision on an action that is unknown, not pending, or whose case is not waiting for a decision."""

    def __init__(self, message: str, action: PlannedAction | None = None) -> None:
        super().__init__(message)
        self.action = action


def pending(actions: Iterable[PlannedAction]) -> list[PlannedAction]:
    """The actions waiting for a human decision."""
    return [a for a in actions if a.status == "awaiting_approval"]


def decidable(case: Case, actions: Sequence[PlannedAction], action_id: str) -> PlannedAction:
    """The action `action_id` of `case` if a human may decide it now; otherwise `NotDecidable` says why."""
    action = next((a for a in actions if a.id == action_id), None)
    waiting = ", ".join(a.id for a in pending(actions)) or "none"
    if action is None:
        raise NotDecidable(f"case {case.id} has no action {action_id}; pending: {waiting}")
    if action.status != "awaiting_approval" or case.status not in DECIDABLE_CASE_STATUSES:
        raise NotDecidable(
            f"case {case.id} ({case.status}) has no pending action {action_id}: it is {action.status}, and only"
            f" a pending action can be decided; pending: {waiting}",
            action,
        )
    return action


def record_refusal(store: Store, case_id: str, by: str, action_id: str, why: str) -> None:
    """Write a refused decision into the case's ledger, as the human who tried: the decider had the right to
    act, so the attempt belongs in the transcript."""
    store.append(
        case_id, f"human:{by}", "note", DecisionRefused(outcome="refused", action_id=action_id, reason=why)
    )


def containment(actions: Iterable[PlannedAction], registry: Registry) -> PlannedAction | None:
    """The first action that carried out containment: once one has, the case is `contained`."""
    done = ("executed", "simulated")
    return next((a for a in actions if a.status in done and registry.get(a.tool).contains), None)


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


def action_trails(entries: Iterable[LedgerEntry]) -> list[ActionTrail]:
    """Every action of a case, the graph's and the assistant's, read from its ledger in the order they were
    proposed, each with where it stands now."""
    reasons: dict[str, str] = {}
    found: dict[str, ActionTrail] = {}
    for entry in entries:
        if entry.kind not in _ACTION_KINDS:
            continue
        event = entry.event()
        action_id = getattr(event, "action_id", None)
        if not action_id:
            continue
        if isinstance(event, ToolCallRequested) and action_id not in found:
            reasons[action_id] = event.reason or ""
        elif isinstance(event, GuardDecisionRecorded) and action_id in reasons and action_id not in found:
            guard = _guard(event)
            status = STATUS_BY_DECISION[guard.decision]
            action = PlannedAction(id=action_id, reason=reasons[action_id], guard=guard, status=status)  # type: ignore[arg-type]
            found[action_id] = ActionTrail(action, (entry.seq - 1, entry.seq))
        elif action_id in found:
            found[action_id] = _advance(found[action_id], entry, event)
    return list(found.values())


def case_actions(entries: Iterable[LedgerEntry]) -> list[PlannedAction]:
    """Every action of a case with its current status (see `action_trails`)."""
    return [trail.action for trail in action_trails(entries)]


_ACTION_KINDS = frozenset(
    {
        "tool_call",
        "guard_decision",
        "approval_requested",
        "approval_decided",
        "tool_result",
        "action_executed",
        "note",
    }
)


def _guard(event: GuardDecisionRecorded) -> GuardDecision:
    return GuardDecision.model_validate(event.model_dump(mode="json", exclude={"action_id"}))


def _advance(trail: ActionTrail, entry: LedgerEntry, event: LedgerEvent) -> ActionTrail:
    action = trail.action
    changes: dict[str, object] = {"seqs": (*trail.seqs, entry.seq)}
    match event:
        case GuardDecisionRecorded() as decided:
            # A second decision on an allowed action: its tenant's action budget was spent, so it now waits
            # for a human (or, in principle, is denied).
            guard = _guard(decided)
            action = action.model_copy(update={"guard": guard, "status": STATUS_BY_DECISION[guard.decision]})
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
        case ApprovalInvalid() as invalid:
            action = action.model_copy(update={"status": invalid.outcome})
        case ActionExecuted(status=status, output=output):
            done = "simulated" if status == "simulated" else "executed"
            action = action.model_copy(update={"status": done, "receipt": output})
            changes["executed_seq"] = entry.seq
        case ToolResultRecorded(status="duplicate"):
            action = action.model_copy(update={"status": "executed"})
        case ToolResultRecorded(status=status) if status not in ("ok", "simulated"):
            action = action.model_copy(update={"status": "failed"})
        case _:
            pass  # a note about the action (a refused or expired decision): part of its trail, no change
    return dataclasses.replace(trail, action=action, **changes)  # type: ignore[arg-type]
