"""One question's working state for the case assistant: the case, its alert, its ledger as it grows while the
assistant looks things up, and the tool context. Both responders (builtin and model) work through it."""

from __future__ import annotations

from typing import Any, TypeVar

from soctriage.agents.assistant_actions import ACTOR, case_context, propose
from soctriage.agents.deps import Deps
from soctriage.agents.state import Output, PlannedAction, ProposedAction
from soctriage.service.domain import Alert, Case, LedgerEntry
from soctriage.service.ledger_events import ToolCallRequested, ToolResultRecorded
from soctriage.service.ledger_payload import LedgerPayload
from soctriage.tools import ToolContext

E = TypeVar("E", bound=LedgerPayload)


class ChatSession:
    def __init__(self, deps: Deps, case: Case, alert: Alert) -> None:
        self.deps, self.case, self.alert = deps, case, alert
        self.entries = deps.store.entries(case.id)
        self.ctx: ToolContext = case_context(deps, case, alert, self.entries)
        self.proposed: list[PlannedAction] = []

    def refresh(self) -> None:
        self.entries = self.deps.store.entries(self.case.id)
        self.case = self.deps.store.get_case(self.case.id) or self.case

    async def lookup(self, tool: str, args: dict[str, Any]) -> tuple[int, ToolResultRecorded]:
        """Run a read-tier tool and write the call and its result; returns (result seq, result)."""
        if tool not in self.deps.registry.names("read"):
            outcome = ToolResultRecorded.model_validate(
                {"tool": tool, "status": "refused", "error": "the assistant only reads"}
            )
        else:
            outcome = (await self.deps.registry.run(self.ctx, tool, args)).ledger_event()
        _, result = self.deps.store.append_many(
            self.case.id,
            [(ACTOR, "tool_call", ToolCallRequested(tool=tool, args=args)), (ACTOR, "tool_result", outcome)],
        )
        self.refresh()
        return result.seq, outcome

    async def lookup_output(
        self, tool: str, args: dict[str, Any], model: type[Output]
    ) -> tuple[int, Output | None]:
        """`lookup`, with the result's output read back as `model` through the registry (None when the tool
        did not run or failed)."""
        seq, result = await self.lookup(tool, args)
        if result.output is None:
            return seq, None
        output = self.deps.registry.output(tool, result.output)
        if not isinstance(output, model):
            raise TypeError(f"{tool} writes {type(output).__name__}, not {model.__name__}")
        return seq, output

    def propose(self, tool: str, args: dict[str, Any], reason: str) -> PlannedAction:
        action = propose(
            self.deps,
            self.case,
            self.alert,
            self.entries,
            ProposedAction(tool=tool, args=args, reason=reason),
        )
        self.proposed.append(action)
        self.refresh()
        return action

    def last(self, kind: str) -> LedgerEntry | None:
        return next((e for e in reversed(self.entries) if e.kind == kind), None)

    def last_event(self, event_type: type[E]) -> tuple[int, E] | None:
        """The case's latest entry of `event_type`, as (seq, event)."""
        found = [(e.seq, event) for e in self.entries if isinstance(event := e.event(), event_type)]
        return found[-1] if found else None

    def events(self, event_type: type[E]) -> list[tuple[int, E]]:
        """Every entry of `event_type`, as (seq, event), in ledger order."""
        return [(e.seq, event) for e in self.entries if isinstance(event := e.event(), event_type)]

    def of_kind(self, *kinds: str) -> list[LedgerEntry]:
        return [e for e in self.entries if e.kind in kinds]
