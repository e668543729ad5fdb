"""What every node needs and nothing in the checkpoint should hold: store, tools, guard, analysts, settings.

Built once per process and handed to LangGraph as the run context, so a resumed run gets live connections
instead of stale pickled ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from soctriage.agents.analyst import Analyst
from soctriage.agents.state import Finding, TriageState
from soctriage.service.config import Settings
from soctriage.service.domain import LedgerEntry, LedgerKind
from soctriage.service.ledger_events import ActionExecuted, LedgerPayload, events_of
from soctriage.service.store import Store
from soctriage.tools import Connectors, Guard, Registry, ToolContext
from soctriage.tools.suppression import RuleBook


@dataclass(frozen=True)
class Deps:
    settings: Settings
    store: Store
    analyst: Analyst
    builtin: Analyst
    registry: Registry
    guard: Guard
    connectors: Connectors

    def record(self, case_id: str, actor: str, kind: LedgerKind, payload: LedgerPayload) -> LedgerEntry:
        return self.store.append(case_id, actor, kind, payload)

    def tool_context(self, state: TriageState, findings: Iterable[Finding] = ()) -> ToolContext:
        """The case as tools see it. Enrichment results widen what an action may target, by provenance; a case
        headed for escalation (the model fell back to builtin) needs a human for any containment."""
        results = [
            self.registry.facts(f.tool, f.args, found=f.entities, confirmed=f.confirmed, seq=f.seq)
            for f in findings
            if f.ok
        ]
        return ToolContext.for_alert(
            state["case_id"],
            state["tenant"],
            state["alert"],
            self.settings,
            self.connectors,
            dry_run=self.settings.dry_run,
            results=results,
            approval_required=state.get("escalation"),
            rules=self.rules,
        )

    @property
    def rules(self) -> RuleBook:
        return RuleBook(self.store.engine)

    def executed_keys(self, case_id: str) -> set[str]:
        """Idempotency keys of actions this case's ledger says were carried out: they never run again."""
        executed = self.store.entries(case_id, kind="action_executed")
        return {action.idempotency_key for action in events_of(executed, ActionExecuted)}
