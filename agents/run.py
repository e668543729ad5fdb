"""Run the triage graph for alerts and resume it with human decisions: the API the CLI, service and evals use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any, Literal, Self

import aiosqlite
import httpx2
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict
from soctriage.agents.builtin import BuiltinAnalyst
from soctriage.agents.deps import Deps
from soctriage.agents.graph import build_graph
from soctriage.agents.models import make_analyst
from soctriage.agents.state import PlannedAction, TriageState, checkpoint_types
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, Case
from soctriage.service.store import Store
from soctriage.tools import Connectors, Guard, default_registry


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


class DecisionRefused(ValueError):
    """A decision on an action that is unknown, not pending, or whose case is not awaiting approval."""


class Triager:
    """Opens the store, the checkpointer and the tools once, then triages alerts one by one.

    Use as `async with Triager(settings) as triager: await triager.triage(alert)`.
    """

    def __init__(self, settings: Settings, *, http_client: httpx2.AsyncClient | None = None) -> None:
        self.settings = settings
        self._http_client = http_client
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        settings = self.settings
        self.store = self._stack.enter_context(Store.open(settings))
        checkpointer = await self._stack.enter_async_context(_checkpointer(settings))
        registry = default_registry()
        self.deps = Deps(
            settings=settings,
            store=self.store,
            analyst=make_analyst(settings, self._http_client),
            builtin=BuiltinAnalyst(),
            registry=registry,
            guard=Guard.from_settings(settings, registry=registry),
            connectors=Connectors.from_settings(settings),
        )
        self.graph = build_graph(checkpointer)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def triage(self, alert: Alert, tenant: str | None = None) -> TriageResult:
        tenant = tenant or self.settings.tenant
        existing = self.store.find_case_by_alert(alert.id, tenant)
        if existing is not None:
            # A re-delivered alert never opens a second case; it resumes the first if that one was interrupted.
            state = await self._state(existing.id)
            if state and existing.status in ("new", "triaging"):
                await self.graph.ainvoke(None, self._config(existing.id), context=self.deps)
            return await self.result(existing.id, duplicate=True)
        case = self.store.create_case(alert, tenant)
        start: TriageState = {"case_id": case.id, "tenant": tenant, "alert": alert, "alert_seq": 1}
        await self.graph.ainvoke(start, self._config(case.id), context=self.deps)
        return await self.result(case.id)

    async def decide(
        self, case_id: str, action_id: str, *, approve: bool, by: str, reason: str | None = None
    ) -> TriageResult:
        case = self.store.get_case(case_id)
        if case is None:
            raise DecisionRefused(f"case {case_id} does not exist")
        pending = {a.id: a for a in await self._actions(case_id) if a.status == "awaiting_approval"}
        if case.status != "awaiting_approval" or action_id not in pending:
            known = ", ".join(sorted(pending)) or "none"
            raise DecisionRefused(
                f"case {case_id} ({case.status}) has no pending action {action_id}; pending: {known}"
            )
        decision: dict[str, Any] = {"action_id": action_id, "approve": approve, "by": by, "reason": reason}
        await self.graph.ainvoke(Command(resume=decision), self._config(case_id), context=self.deps)
        return await self.result(case_id)

    async def result(self, case_id: str, *, duplicate: bool = False) -> TriageResult:
        case = self.store.get_case(case_id)
        if case is None:
            raise LookupError(f"case {case_id} does not exist")
        actions = await self._actions(case_id)
        return _result(case, actions, len(self.store.entries(case_id)), duplicate)

    async def _state(self, case_id: str) -> dict[str, Any]:
        snapshot = await self.graph.aget_state(self._config(case_id))
        return snapshot.values

    async def _actions(self, case_id: str) -> tuple[PlannedAction, ...]:
        return (await self._state(case_id)).get("actions", ())

    @staticmethod
    def _config(case_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": case_id}}


def _result(case: Case, actions: tuple[PlannedAction, ...], entries: int, duplicate: bool) -> TriageResult:
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


@asynccontextmanager
async def _checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver]:
    """LangGraph checkpoints live beside the cases: in the SQLite file, or in PostgreSQL when configured."""
    if settings.database_url and settings.sqlalchemy_url.startswith("postgresql"):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        url = "postgresql://" + settings.sqlalchemy_url.split("://", 1)[1]
        async with AsyncPostgresSaver.from_conn_string(url, serde=_serde()) as saver:
            await saver.setup()
            yield saver
        return
    # A file of its own beside the store: the checkpointer writes from the event loop while nodes write the
    # ledger synchronously, and SQLite's one writer lock per file would make them wait on each other.
    settings.home.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(settings.home / "checkpoints.db") as conn:
        await conn.execute("PRAGMA busy_timeout = 30000")
        await conn.execute("PRAGMA journal_mode = WAL")
        saver = AsyncSqliteSaver(conn, serde=_serde())
        await saver.setup()
        yield saver


def _serde() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=checkpoint_types())
