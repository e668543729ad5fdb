"""Run the triage graph for alerts and resume it with human decisions: the API the CLI, service and evals use."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any, Literal, Self

import httpx2
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict
from soctriage.agents.assistant import CaseAssistant
from soctriage.agents.assistant_actions import decide_proposal
from soctriage.agents.builtin import BuiltinAnalyst
from soctriage.agents.checkpoint import open_checkpointer, prune_finished
from soctriage.agents.deps import Deps
from soctriage.agents.graph import build_graph
from soctriage.agents.grouping import score_joined
from soctriage.agents.lifecycle import (
    PROPOSAL_PREFIX,
    Decision,
    NotDecidable,
    case_actions,
    decidable,
    pending,
    record_refusal,
)
from soctriage.agents.llm import ChatClient
from soctriage.agents.models import make_analyst
from soctriage.agents.state import PlannedAction, initial_state
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, Case
from soctriage.service.ledger_events import AlertReceived, events_of
from soctriage.service.ledger_notes import GroupedAlert
from soctriage.service.store import DuplicateAlertError, Joined, Store
from soctriage.tools import Connectors, Guard, default_registry
from soctriage.tools.budget import StoreActionBudget
from soctriage.tools.retrieval import LazyIndex

# The key `ainvoke` adds to the values of a run that an interrupt paused.
_PAUSED = "__interrupt__"


class ActionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    tool: str
    target: str
    decision: Literal["allow", "needs_approval", "deny"]
    status: str
    reason: str
    expires_at: datetime | None = None


class TriageResult(BaseModel):
    """One line of `soctriage triage --json` (DESIGN §7)."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    alert_id: str
    status: str
    disposition: str | None
    severity: str | None
    confidence: float | None
    techniques: list[str]
    actions: list[ActionView]
    ledger_entries: int
    duplicate: bool = False
    grouped: bool = False


class Triager:
    """Opens the store, the checkpointer and the tools once, then triages alerts one by one.

    Use as `async with Triager(settings) as triager: await triager.triage(alert)`. With `group=False` every
    alert opens its own case whatever the policy says: evals score each alert on its own. `index` shares the
    retrieval index of whoever handed it down (`serve`'s API and its workers); without it the triager opens its
    own on first use and closes it on exit.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: httpx2.AsyncClient | None = None,
        group: bool = True,
        index: LazyIndex | None = None,
    ) -> None:
        self.settings = settings
        self._http_client = http_client
        self._group = group
        # The retrieval index: one handed down is shared with its owner (and left open for it), else our own.
        self._index = index
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        settings = self.settings
        self.store = self._stack.enter_context(Store.open(settings))
        self._checkpointer = await self._stack.enter_async_context(open_checkpointer(settings))
        registry = default_registry()
        self.deps = Deps(
            settings=settings,
            store=self.store,
            analyst=make_analyst(settings, self._http_client),
            builtin=BuiltinAnalyst(),
            registry=registry,
            guard=Guard.from_settings(
                settings, registry=registry, budget=StoreActionBudget(self.store.engine)
            ),
            connectors=Connectors.from_settings(settings, retrieval=self._index),
        )
        self.graph = build_graph(self._checkpointer)
        # The policy's grouping rules, read once: intake and workers group by the same ones.
        self.grouping = self.deps.guard.policy.grouping.grouping() if self._group else None
        self._locks = _CaseLocks()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Cases finished in this run are searchable before the process moves on (or exits); an index of our own
        # is closed with us, so its indexer thread does not keep it alive.
        index = self.deps.connectors.retrieval
        await asyncio.to_thread(index.flush if self._index else index.close)
        await self._stack.aclose()

    def assistant(self) -> CaseAssistant:
        """The case assistant on this triager's model: builtin, or the OpenAI-compatible client."""
        client = getattr(self.deps.analyst, "client", None)
        if not isinstance(client, ChatClient):
            return CaseAssistant(self.deps)
        return CaseAssistant(self.deps, client, label=self.deps.analyst.name)

    async def triage(self, alert: Alert, tenant: str | None = None) -> TriageResult:
        """Open a case for `alert` and run it, or add it to the case of its incident (policy `grouping`). A
        re-delivered alert never opens a second case; if the first one was interrupted (a crash mid-run), the
        re-delivery resumes it."""
        tenant = tenant or self.settings.tenant
        existing = self.store.find_case_by_alert(alert.id, tenant)
        if existing is not None:
            if existing.status in ("new", "triaging"):
                await self.run_case(existing.id)
            return await self.result(existing.id, duplicate=True, alert_id=alert.id)
        try:
            opened = self.store.open_or_join(alert, tenant, self.grouping)
        except DuplicateAlertError as stored:
            # Another writer (the API's intake, another command) stored it since the lookup: it is a re-delivery.
            return await self.result(stored.case_id, duplicate=True, alert_id=alert.id)
        if isinstance(opened, Joined):
            return await self.run_grouped(opened.case_id, alert.id)
        async with self._locks.hold(opened.id):
            # The run's own return value is the final state: no checkpoint read-back for a new case.
            start = initial_state(opened.id, tenant)
            self.deps.alerts.put((opened.id, 1), alert)
            values = await self._run(opened.id, start)
        return self._result(opened.id, values.get("actions", ()), duplicate=False)

    async def run_grouped(self, case_id: str, alert_id: str) -> TriageResult:
        """Score an alert that joined `case_id` against the case, after any run of the case in this process:
        triage the case again when the alert adds something, else leave it be. A retry after a crash finishes
        what the first attempt decided."""
        async with self._locks.hold(case_id):
            case = await self.store.io(self.store.get_case, case_id)
            alert = await self.store.io(self.store.get_alert, alert_id, case.tenant) if case else None
            if case is None or alert is None:
                raise LookupError(f"case {case_id} has no alert {alert_id}")
            if case.status in ("new", "triaging"):
                # Its first run has not happened or was cut short: the joined alert is scored against its end.
                await self.run_case(case_id)
                case = await self.store.io(self.store.get_case, case_id) or case
            received = await self.store.io(self.store.entries, case_id, kind="alert_received")
            seq = next(
                e.seq for e in received if isinstance(got := e.event(), AlertReceived) and got.id == alert_id
            )
            notes = await self.store.io(self.store.entries, case_id, seq, "note")
            done = [n for n in events_of(notes, GroupedAlert) if n.alert_id == alert_id]
            score = done[0] if done else await score_joined(self.deps, case, alert, seq)
            snapshot = await self.graph.aget_state(self._config(case_id))
            paused = any(task.interrupts for task in snapshot.tasks)
            if score.retriage and not paused and snapshot.values.get("alert_seq") != seq:
                self.deps.alerts.put((case_id, seq), alert)
                start = initial_state(case_id, case.tenant, seq) | {
                    "prior_verdict": case.verdict,
                    "escalation": score.escalation,
                    "verdict_attempts": 0,
                    "verdict_correction": None,
                }
                await self._run(case_id, start)
            elif score.retriage and not paused:
                await self.run_case(case_id)
            elif (score.retriage or score.escalation) and case.status != "escalated":
                reason = (
                    score.escalation
                    or f"alert {alert_id} joined with new evidence while actions await a human"
                )
                await self.store.io(self.store.set_status, case_id, "escalated", "system", reason)
            return await self.result(case_id, alert_id=alert_id, grouped=True)

    async def triage_many(
        self, alerts: Iterable[Alert], *, concurrency: int = 1, tenant: str | None = None
    ) -> AsyncIterator[TriageResult]:
        """Triage `alerts` with up to `concurrency` graph runs at once, yielding results in input order.

        Runs overlap where one waits (a model call, a lookup on a worker thread) and another can go on. A
        re-delivered alert waits for its earlier copy, so one case never has two runs at the same time."""
        pending: deque[asyncio.Task[TriageResult]] = deque()
        running: dict[str, asyncio.Task[TriageResult]] = {}
        try:
            for alert in alerts:
                task = asyncio.create_task(self._triage_after(running.get(alert.id), alert, tenant))
                running[alert.id] = task
                # Only runs still going are tracked, so a long file does not keep every finished task.
                task.add_done_callback(lambda done, key=alert.id: _forget(running, key, done))
                pending.append(task)
                if len(pending) >= max(1, concurrency):
                    yield await pending.popleft()
            while pending:
                yield await pending.popleft()
        finally:
            for task in pending:
                task.cancel()

    async def _triage_after(
        self, earlier: asyncio.Task[TriageResult] | None, alert: Alert, tenant: str | None
    ) -> TriageResult:
        if earlier is not None:
            await asyncio.wait([earlier])  # its outcome is its own line; this copy only needs it finished
        return await self.triage(alert, tenant)

    async def run_case(self, case_id: str) -> TriageResult:
        """Advance a case opened at intake (`Store.create_cases`): start its graph, or resume it from its
        checkpoint after a crash. A case paused for approval or already finished is left as it is."""
        case = await self.store.io(self.store.get_case, case_id)
        if case is None:
            raise LookupError(f"case {case_id} does not exist")
        # A case still `new` has had nothing done: its ingest step sets `triaging` before anything else, so a
        # checkpoint it may have (a crash just after the run began) holds only the input, and starting over is
        # the same run. Skipping the checkpoint read there saves it on every fresh case.
        snapshot = None if case.status == "new" else await self.graph.aget_state(self._config(case_id))
        if snapshot is None or not snapshot.values:
            alert = await self.store.io(self.store.get_alert, case.alert_ids[0], case.tenant)
            if alert is None:
                raise LookupError(f"case {case_id}: alert {case.alert_ids[0]} is not stored")
            start = initial_state(case_id, case.tenant)
            self.deps.alerts.put((case_id, 1), alert)
            values = await self._run(case_id, start)
            # A first run's actions are all the graph's, in its own final state: no ledger read-back.
            return await self.store.io(self._result, case_id, values.get("actions", ()), duplicate=False)
        if snapshot.tasks and not any(task.interrupts for task in snapshot.tasks):
            # `tasks`, not `next`: a step whose node finished but whose checkpoint a crash cut off has no `next`
            # yet, only the node's saved writes; invoking with None applies them and goes on.
            await self._run(case_id, None)
        return await self.result(case_id)

    async def decide(self, case_id: str, decision: Decision) -> TriageResult:
        """Apply a human's (or the expiry sweep's) decision to a pending action of the case: resume the paused
        graph with it, or decide the assistant's proposal. `NotDecidable` when the action is not pending."""
        case = self.store.get_case(case_id)
        if case is None:
            raise NotDecidable(f"case {case_id} does not exist")
        actions = await self.store.io(self.actions, case_id)
        action = decidable(case, actions, decision.action_id)
        if action.id.startswith(PROPOSAL_PREFIX):
            alert = self.store.get_alert(case.alert_ids[0], case.tenant)
            assert alert is not None
            graph_waiting = any(not a.id.startswith(PROPOSAL_PREFIX) for a in pending(actions))
            await decide_proposal(self.deps, case, alert, decision, graph_waiting=graph_waiting)
        else:
            await self._run(case_id, Command(resume=decision.model_dump(mode="json")))
        return await self.result(case_id)

    def refuse(self, case_id: str, decision: Decision, why: str) -> None:
        """Record in the case's ledger that `decision` was refused (see `lifecycle.record_refusal`)."""
        record_refusal(self.store, case_id, decision.by, decision.action_id, why)

    async def _run(self, case_id: str, start: Any) -> dict[str, Any]:
        """Run the case's graph from `start` (a state, a resume command, or None to go on from its checkpoint).
        A run that finished, not paused for a human, keeps only its last checkpoint."""
        values: dict[str, Any] = await self.graph.ainvoke(start, self._config(case_id), context=self.deps)
        if _PAUSED not in values:
            await prune_finished(self._checkpointer, case_id)
        return values

    async def result(
        self, case_id: str, *, duplicate: bool = False, alert_id: str | None = None, grouped: bool = False
    ) -> TriageResult:
        actions = await self.store.io(self.actions, case_id)
        return self._result(case_id, actions, duplicate=duplicate, alert_id=alert_id, grouped=grouped)

    def actions(self, case_id: str) -> list[PlannedAction]:
        """Every action of the case, the graph's and the assistant's, as its ledger records them."""
        return case_actions(self.store.entries(case_id))

    def _result(
        self,
        case_id: str,
        actions: Sequence[PlannedAction],
        *,
        duplicate: bool,
        alert_id: str | None = None,
        grouped: bool = False,
    ) -> TriageResult:
        case = self.store.get_case(case_id)
        if case is None:
            raise LookupError(f"case {case_id} does not exist")
        result = _result(case, actions, self.store.head_seq(case_id), duplicate)
        return result.model_copy(update={"alert_id": alert_id, "grouped": grouped}) if alert_id else result

    @staticmethod
    def _config(case_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": case_id}}


class _CaseLocks:
    """One lock per case in this process: an alert that joins a case waits for the case's run to finish."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, case_id: str) -> AsyncIterator[None]:
        lock, users = self._held.get(case_id, (asyncio.Lock(), 0))
        self._held[case_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._held[case_id]
            if users == 1:
                del self._held[case_id]
            else:
                self._held[case_id] = (lock, users - 1)


def _forget(
    running: dict[str, asyncio.Task[TriageResult]], key: str, done: asyncio.Task[TriageResult]
) -> None:
    if running.get(key) is done:
        del running[key]


def _result(case: Case, actions: Sequence[PlannedAction], entries: int, duplicate: bool) -> TriageResult:
    verdict = case.verdict
    return TriageResult(
        case_id=case.id,
        alert_id=case.alert_ids[0] if case.alert_ids else "",
        status=case.status,
        disposition=verdict.disposition if verdict else None,
        severity=verdict.severity.label if verdict else None,
        confidence=verdict.confidence if verdict else None,
        techniques=list(verdict.techniques) if verdict else [],
        actions=[
            ActionView(
                id=a.id,
                tool=a.tool,
                target=a.target,
                decision=a.guard.decision,
                status=a.status,
                reason=a.guard.reason,
                expires_at=a.expires_at,
            )
            for a in actions
        ],
        ledger_entries=entries,
        duplicate=duplicate,
    )
