"""Case decisions for the faces that act for a key (the API's case routes, the console): tenant-scoped reads, and
human decisions on pending actions.

A decision refused because of the action's state (not pending, expired) is written to the case's ledger (actor
human:<key name>, a `note` with outcome refused and why) before the caller hears about it: the decider had the
right to act. A key whose role may not decide at all is refused in the log only: a viewer must not be able to
write into a case's transcript.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from soctriage.agents.lifecycle import Decision, NotDecidable, decidable
from soctriage.agents.run import ActionView, Triager, TriageResult
from soctriage.service import metrics
from soctriage.service.auth import Principal
from soctriage.service.config import Settings
from soctriage.service.domain import Case, CaseStatus, LedgerEntry
from soctriage.service.ingest.limits import LimitError, check_value
from soctriage.service.queue import JobQueue, JobSpec
from soctriage.service.store import Store
from soctriage.service.store.case_query import CaseFilter, CasePage, page_cases

log = logging.getLogger("soctriage.api")


class NotFoundError(LookupError):
    """No such case (or action) for this tenant."""


class ForbiddenError(PermissionError):
    """The key's role does not allow this."""


class ConflictError(ValueError):
    """The request does not fit the case's current state."""


class CaseView(BaseModel):
    case: Case
    actions: list[ActionView]
    ledger_entries: int


class RequestBody(BaseModel):
    """A JSON request body, held to intake's limits on text: JSON can escape a lone surrogate (`\\ud800`),
    which no UTF-8 encoder (the ledger hash, the database driver) takes, and a NUL, which PostgreSQL's text
    columns refuse; either is refused here, naming the field."""

    @model_validator(mode="before")
    @classmethod
    def _unicode_only(cls, data: Any) -> Any:
        try:
            check_value(data)
        except LimitError as exc:
            raise ValueError(str(exc)) from None
        return data


class DecisionRequest(RequestBody):
    model_config = {"extra": "forbid"}

    approve: bool = Field(description="true approves the action, false rejects it")
    reason: str | None = Field(default=None, max_length=4000, description="why (recorded in the ledger)")


class DecisionResult(BaseModel):
    case_id: str
    action_id: str
    state: Literal["applied", "queued"] = Field(
        description="applied: the case has resumed and `result` shows it; queued: a worker will apply it"
    )
    job_id: int
    result: TriageResult | None = None


@dataclass(frozen=True)
class Cases:
    settings: Settings
    triager: Triager
    queue: JobQueue

    @property
    def store(self) -> Store:
        return self.triager.store

    async def visible(self, who: Principal, case_id: str) -> Case:
        case = await asyncio.to_thread(self.store.get_case, case_id)
        if case is None or case.tenant != who.tenant:
            # Another tenant's case is reported exactly like a missing one.
            raise NotFoundError(f"case {case_id} does not exist")
        return case

    async def list(self, who: Principal, status: CaseStatus | None, limit: int) -> list[Case]:
        return await asyncio.to_thread(self.store.list_cases, status, who.tenant, limit)

    async def page(self, who: Principal, wanted: CaseFilter, limit: int, cursor: str | None) -> CasePage:
        return await asyncio.to_thread(page_cases, self.store, who.tenant, wanted, limit=limit, cursor=cursor)

    async def get(self, who: Principal, case_id: str) -> CaseView:
        case = await self.visible(who, case_id)
        result = await self.triager.result(case_id)
        return CaseView(case=case, actions=result.actions, ledger_entries=result.ledger_entries)

    async def ledger(self, who: Principal, case_id: str, from_seq: int) -> list[LedgerEntry]:
        await self.visible(who, case_id)
        return await asyncio.to_thread(self.store.entries, case_id, from_seq)

    async def decide(
        self, who: Principal, case_id: str, action_id: str, request: DecisionRequest
    ) -> DecisionResult:
        case = await self.visible(who, case_id)
        if not who.can("approver"):
            log.warning(
                "decision refused",
                extra={
                    "event": "decision_refused",
                    "case_id": case_id,
                    "action_id": action_id,
                    "key": who.name,
                    "tenant": who.tenant,
                    "role": who.role,
                    "reason": "deciding needs the approver role",
                },
            )
            metrics.ACTION_DECISIONS.labels("refused_role").inc()
            raise ForbiddenError(f"role {who.role} may not decide actions (approver or admin needed)")
        decision = Decision(action_id=action_id, approve=request.approve, by=who.name, reason=request.reason)
        actions = await asyncio.to_thread(self.triager.actions, case_id)
        try:
            action = decidable(case, actions, action_id)
        except NotDecidable as exc:
            if exc.action is None:
                raise NotFoundError(f"case {case_id} has no action {action_id}") from None
            await asyncio.to_thread(self.triager.refuse, case_id, decision, str(exc))
            metrics.ACTION_DECISIONS.labels("refused_state").inc()
            raise ConflictError(str(exc)) from None
        spec = JobSpec(case_id, "decide", decision.model_dump(mode="json"))
        job_id = await asyncio.to_thread(self.queue.enqueue_now, self.store, spec)
        state = await self.queue.wait(job_id, self.settings.decision_wait_s)
        if decision.late_for(action):
            # The graph records the decision as expired (approval_decided, outcome expired) and escalates.
            metrics.ACTION_DECISIONS.labels("expired").inc()
            deadline = action.expires_at.isoformat() if action.expires_at else ""
            raise ConflictError(
                f"the approval request for {action_id} expired at {deadline};"
                " the decision was recorded as expired and nothing was done"
            )
        metrics.ACTION_DECISIONS.labels("approved" if request.approve else "rejected").inc()
        if state == "done":
            result = await self.triager.result(case_id)
            return DecisionResult(
                case_id=case_id, action_id=action_id, state="applied", job_id=job_id, result=result
            )
        return DecisionResult(case_id=case_id, action_id=action_id, state="queued", job_id=job_id)
