"""What every node needs and nothing in the checkpoint should hold: store, tools, guard, analysts, settings.

Built once per process and handed to LangGraph as the run context, so a resumed run gets live connections
instead of stale pickled ones.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from soctriage.agents.analyst import Analyst
from soctriage.agents.state import Finding, TriageState
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, LedgerEntry, LedgerKind
from soctriage.service.ledger_events import ActionExecuted, AlertReceived, events_of
from soctriage.service.ledger_payload import LedgerPayload
from soctriage.service.store import Store
from soctriage.tools import Connectors, Guard, Registry, ToolContext
from soctriage.tools.suppression import RuleBook

AlertKey = tuple[str, int]  # (case_id, seq of the alert's `alert_received` entry)


class RecentAlerts:
    """The alerts of the latest runs, so the nodes of a run read their alert from the store once, not each.

    Bounded: a process that triages thousands of alerts keeps only the latest `size`; a run whose alert was
    pushed out reads it again. An entry never goes stale: a ledger entry and its alert never change."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._alerts: OrderedDict[AlertKey, Alert] = OrderedDict()

    def get(self, key: AlertKey) -> Alert | None:
        alert = self._alerts.get(key)
        if alert is not None:
            self._alerts.move_to_end(key)
        return alert

    def put(self, key: AlertKey, alert: Alert) -> None:
        self._alerts[key] = alert
        self._alerts.move_to_end(key)
        while len(self._alerts) > self._size:
            self._alerts.popitem(last=False)


@dataclass(frozen=True)
class Deps:
    settings: Settings
    store: Store
    analyst: Analyst
    builtin: Analyst
    registry: Registry
    guard: Guard
    connectors: Connectors
    alerts: RecentAlerts = field(default_factory=RecentAlerts)

    async def alert(self, state: TriageState) -> Alert:
        """The alert this run triages: the one its state names, from the cache or else from the store."""
        key = (state["case_id"], state["alert_seq"])
        alert = self.alerts.get(key)
        if alert is None:
            alert = await self.store.io(self._stored_alert, *key, state["tenant"])
            self.alerts.put(key, alert)
        return alert

    def _stored_alert(self, case_id: str, seq: int, tenant: str) -> Alert:
        entry = self.store.entry(case_id, seq)
        received = events_of([entry] if entry else [], AlertReceived)
        alert = self.store.get_alert(received[0].id, tenant) if received else None
        if alert is None:
            raise LookupError(f"case {case_id}: ledger entry {seq} names no stored alert")
        return alert

    def record(self, case_id: str, actor: str, kind: LedgerKind, payload: LedgerPayload) -> LedgerEntry:
        return self.store.append(case_id, actor, kind, payload)

    def tool_context(self, state: TriageState, alert: Alert, findings: Iterable[Finding] = ()) -> ToolContext:
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
            alert,
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
