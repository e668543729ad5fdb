"""What an alert that joined a case (an alert storm's next alert) adds to it, and the floor under the verdict
of a case triaged again because of one.

A joined alert is scored against what the case already holds: its alerts' hosts, techniques and severities,
its verdict, and the threat intel it already looked up (each indicator is looked up once per case). Only an
alert that adds something goes back through the graph; the rest cost no model call. Grouping never hides an
attack: new evidence re-opens triage, a re-run never weakens the case's verdict, and a benign-closed case that
receives a malicious-looking alert is escalated to a human.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict
from soctriage.agents.analyst import Task
from soctriage.agents.deps import Deps
from soctriage.agents.injection import scan_alert
from soctriage.agents.state import DISPOSITIONS_AUTO_CLOSE
from soctriage.service.domain import (
    Alert,
    Attack,
    Case,
    Device,
    Disposition,
    Severity,
    Verdict,
    canonical_json,
)
from soctriage.service.ledger_events import (
    AlertReceived,
    LedgerRecord,
    ToolCallRequested,
    events_of,
    is_event,
)
from soctriage.service.ledger_notes import GroupedAlert, PossiblePromptInjection
from soctriage.tools.intel import IntelLookupResult
from soctriage.tools.registry import ToolOutcome
from soctriage.tools.suppression import rule_key

INTEL_TOOL = "threat_intel_lookup"
# Stronger first: a re-run may move a case's verdict up this order, never down.
_STRENGTH: dict[Disposition, int] = {
    "true_positive": 3,
    "inconclusive": 2,
    "benign_true_positive": 1,
    "false_positive": 1,
}
# What makes a joined alert malicious-looking, as opposed to merely new (another host of a benign storm).
_ALARMING = ("malicious_intel", "injection", "higher_severity", "new_technique")


class _Scored(BaseModel):
    """What scoring reads of each earlier alert of the case, in the alert's own types. Only these fields are
    validated: a whole `Alert` costs ~100 µs, and a storm's case holds hundreds of alerts, each read again at
    every join."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    device: Device | None = None
    attacks: tuple[Attack, ...] = ()
    severity: Severity = Severity()


def verdict_floor(prior: Verdict, answer: Verdict) -> Verdict:
    """`answer` from a re-run, never weaker than the case's `prior` verdict: the stronger disposition (the
    newer on a tie), the higher severity, and the techniques and evidence of both (one ledger, so the
    prior verdict's citations stay valid)."""
    base = answer if _STRENGTH[answer.disposition] >= _STRENGTH[prior.disposition] else prior
    return base.model_copy(
        update={
            "severity": max(prior.severity, answer.severity, key=_severity_rank),
            "techniques": tuple(dict.fromkeys((*prior.techniques, *answer.techniques))),
            "evidence": tuple(sorted({*prior.evidence, *answer.evidence})),
        }
    )


async def score_joined(deps: Deps, case: Case, alert: Alert, seq: int) -> GroupedAlert:
    """Score the alert at ledger `seq` against the rest of `case`, looking up in threat intel only the
    indicators the case has not looked up yet, and write the score as a `grouped_alert` note."""
    store = deps.store
    received = [e for e in await store.io(store.entries, case.id, kind="alert_received") if e.seq != seq]
    earlier = [_Scored.model_validate(e.payload) for e in received]
    hosts = {((a.device.hostname if a.device else None) or "").lower() for a in earlier}
    techniques = {a.technique_id for e in earlier for a in e.attacks}
    techniques |= set(case.verdict.techniques if case.verdict else ())
    severities = [int(a.severity.id) for a in earlier]
    if case.verdict is not None:
        severities.append(_severity_rank(case.verdict.severity))
    adds: dict[str, list[str]] = {}
    host = alert.device.hostname if alert.device else None
    if host and host.lower() not in hosts:
        adds["new_host"] = [host]
    if new := [t for t in alert.techniques if t not in techniques]:
        adds["new_technique"] = new
    if _severity_rank(alert.severity) > max(severities, default=0):
        adds["higher_severity"] = [alert.severity.label]
    notes = await store.io(store.entries, case.id, kind="note")
    flagged = any(is_event(n, PossiblePromptInjection) for n in notes) or any(
        "injection" in n.adds for n in events_of(notes, GroupedAlert)
    )
    if not flagged and (markers := scan_alert(alert)):
        adds["injection"] = list(markers)
    if hits := await _new_intel_hits(deps, case, alert, seq):
        adds["malicious_intel"] = hits
    if (case.verdict is None or case.verdict.disposition != "true_positive") and (
        activity := _new_activity(alert, events_of(received, AlertReceived))
    ):
        adds["new_activity"] = activity
    score = _decide(case, alert.id, adds)
    await store.io(deps.record, case.id, "system", "note", score)
    return score


def _decide(case: Case, alert_id: str, adds: dict[str, list[str]]) -> GroupedAlert:
    verdict = case.verdict
    if not adds and verdict is not None:
        outcome = f"scored against the case's {verdict.disposition}"
        return GroupedAlert(alert_id=alert_id, adds=adds, outcome=outcome, escalation=None)
    if case.status == "awaiting_approval":
        # Its run is paused for a human: that human now looks at the whole case.
        reason = (
            f"alert {alert_id} joined with new evidence ({', '.join(adds)}) while the case was {case.status}"
        )
        return GroupedAlert(alert_id=alert_id, adds=adds, outcome="escalate", escalation=reason)
    escalation = None
    benign = verdict is None or verdict.disposition in DISPOSITIONS_AUTO_CLOSE
    if case.status == "closed" and any(k in adds for k in _ALARMING):
        escalation = f"re-opened: alert {alert_id} joined a benign-closed case with {', '.join(adds)}"
    elif case.status != "closed" and benign:
        # A case a human must close (injection, low confidence, failure) stays with a human.
        escalation = f"alert {alert_id} joined a case that was {case.status}; a grouped alert cannot close it"
    return GroupedAlert(alert_id=alert_id, adds=adds, outcome="retriage", escalation=escalation)


async def _new_intel_hits(deps: Deps, case: Case, alert: Alert, seq: int) -> list[str]:
    """Indicators of `alert` that threat intel calls malicious, looking up only those the case has not looked
    up before; each lookup is a `tool_call` / `tool_result` pair in the case's ledger."""
    store = deps.store
    tools = tuple(deps.registry.openai_tools([INTEL_TOOL]))
    plan = (await deps.builtin.plan_enrichment(Task(alert=alert, alert_seq=seq, tools=tools))).answer
    asked = await store.io(store.entries, case.id, kind="tool_call")
    done = {
        canonical_json(call.args) for call in events_of(asked, ToolCallRequested) if call.tool == INTEL_TOOL
    }
    calls = [c for c in plan.calls if c.tool == INTEL_TOOL and canonical_json(c.args) not in done]
    if not calls:
        return []
    ctx = deps.tool_context({"case_id": case.id, "tenant": case.tenant}, alert)
    records: list[LedgerRecord] = []
    hits: list[str] = []
    for call in calls:
        outcome: ToolOutcome = await deps.registry.run(ctx, call.tool, call.args)
        request = ToolCallRequested.model_validate(
            {"tool": call.tool, "args": call.args, "alert_id": alert.id}
        )
        records += [
            ("enrichment_agent", "tool_call", request),
            ("enrichment_agent", "tool_result", outcome.ledger_event()),
        ]
        if outcome.ok and IntelLookupResult.model_validate(outcome.output).verdict == "malicious":
            hits.append(str(call.args.get("indicator")))
    await store.io(store.append_many, case.id, records)
    return hits


def _new_activity(alert: Alert, earlier: Iterable[AlertReceived]) -> list[str]:
    """The joined alert's program, command shape, parent, account or file when no earlier alert of the case had
    the same (the structured key a suppression rule matches on): under one detection on one host, an attacker's
    own command must not be scored as a repeat of the benign one the case was closed on."""
    seen = set()
    for received in earlier:
        try:
            seen.add(rule_key(received.alert()))
        except ValueError:
            continue  # an earlier alert that no longer validates proves no repeat
    mine = rule_key(alert)
    if mine in seen:
        return []
    if mine is None:
        return [alert.detection]
    return [mine.cmdline_shape or mine.process_path or mine.file_path or mine.file_sha256 or mine.detection]


def _severity_rank(severity: Severity) -> int:
    # OCSF's 99 ("other") says nothing about how bad it is.
    return int(severity.id) if severity.id <= 6 else 0
