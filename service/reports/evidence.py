"""The evidence report, computed from ledger entries alone (DESIGN §2): a pure fold over case chains.

Entries arrive grouped by case, in seq order (the store streams them so; concatenated `ledger export`
transcripts are so too). Each case is reduced to a few facts and dropped, so memory grows with the number of
cases in the period, never with the number of entries. The same entries and verification results always give
the same report, which is what lets an auditor rebuild it from exported ledgers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from soctriage.service.domain import FINAL_CASE_STATUSES
from soctriage.service.ledger_events import LlmCall, TokenTotals, is_event
from soctriage.service.ledger_notes import ModelFallback, PossiblePromptInjection, VerdictRejected
from soctriage.service.reports.integrity import _integrity, _integrity_row
from soctriage.service.reports.model import (
    ActionRow,
    Actions,
    ApprovalRow,
    CaseIntegrity,
    CaseRef,
    CheckpointCitation,
    DenialRow,
    EvidenceReport,
    LateIncident,
    Mfa,
    MfaRow,
    ModelUsage,
    Outcomes,
    Period,
    Timings,
    Volume,
)
from soctriage.service.reports.params import Entry, EvidenceParams
from soctriage.service.reports.requirements import requirements
from soctriage.service.reports.tally import (
    _Approval,
    _is_sensitive,
    _mfa_fields,
    _parse_time,
    _reason_bucket,
    _seconds,
    _sorted,
    _source_name,
    _Tally,
    percentiles,
)
from soctriage.service.store.chain import CaseVerification

# Upper bounds (seconds) of the time-to-verdict histogram, with their labels.
VERDICT_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 1 s", 1),
    ("1-10 s", 10),
    ("10-60 s", 60),
    ("1-10 min", 600),
    ("10-60 min", 3600),
    ("1-24 h", 86400),
    ("> 24 h", math.inf),
)
RESOLVED_STATUSES = frozenset({"contained", "closed"})
RATE_LIMIT_RULE_PREFIX = "rate_limits:"
_MFA_ROWS_PER_ALERT = 5


class EvidenceBuilder:
    """Folds case chains into an `EvidenceReport`. Feed each case whole with `add_case`, then `report()`."""

    def __init__(self, params: EvidenceParams) -> None:
        self.params = params
        self.limit = params.list_limit
        self.t = _Tally()

    def add_case(self, entries: Sequence[Entry], verification: CaseVerification | None) -> bool:
        """Fold one case's chain (seq order). Returns False, changing nothing, when the case's alert was
        received outside the period or the chain has no `alert_received` entry to date it by."""
        alert = next((e for e in entries if e.kind == "alert_received"), None)
        if alert is None or not self.params.in_period(alert.ts):
            return False
        t, limit = self.t, self.limit
        case_id, received = alert.case_id, alert.ts
        newest = entries[-1].ts
        t.newest = newest if t.newest is None else max(t.newest, newest)
        # A case holds every alert of its incident (policy `grouping`): alerts and cases are counted apart.
        received_count = 0
        for entry in entries:
            if entry.kind == "alert_received":
                self._alert(entry)
                received_count += 1
        t.cases += 1

        status = "new"
        reached: dict[str, datetime] = {}
        verdict: dict[str, Any] | None = None
        verdict_at: datetime | None = None
        sensitive_actions: set[str] = set()
        approved_actions: set[str] = set()
        requests: dict[str, _Approval] = {}
        for entry in entries:
            kind, payload = entry.kind, entry.payload
            if kind == "status_change":
                status = str(payload.get("to"))
                if status not in reached:
                    reached[status] = entry.ts
                    if status == "escalated":
                        t.escalation_reasons[_reason_bucket(payload.get("reason"))] += 1
            elif kind == "verdict":
                verdict = payload
                if verdict_at is None:
                    verdict_at = entry.ts
                t.verdicts_by_model[str(payload.get("model", "unknown"))] += 1
            elif kind == "llm_call":
                self._llm_call(payload)
            elif kind == "note":
                t.fallbacks += is_event(entry, ModelFallback)
                t.verdict_rejections += is_event(entry, VerdictRejected)
                t.injection_flags += is_event(entry, PossiblePromptInjection)
            elif kind == "guard_decision":
                tool, decision = str(payload.get("tool")), str(payload.get("decision"))
                t.decisions.setdefault(tool, Counter())[decision] += 1
                if decision == "deny":
                    rule = str(payload.get("rule_id"))
                    t.denials[rule] += 1
                    t.denial_reason.setdefault(rule, str(payload.get("reason", "")))
                    t.rate_limit_hits += rule.startswith(RATE_LIMIT_RULE_PREFIX)
                if _is_sensitive(payload.get("targets")):
                    t.sensitive += 1
                    sensitive_actions.add(str(payload.get("action_id")))
            elif kind == "approval_requested":
                requests[str(payload.get("action_id"))] = _Approval(
                    case_id,
                    str(payload.get("action_id")),
                    str(payload.get("tool")),
                    entry.ts,
                    _parse_time(payload.get("expires_at")),
                )
            elif kind == "approval_decided":
                request = requests.get(str(payload.get("action_id")))
                if request is not None and request.outcome is None:
                    request.approver = entry.actor.removeprefix("human:")
                    request.outcome = str(payload.get("outcome"))
                    request.decided_at = entry.ts
                if payload.get("outcome") == "approved":
                    approved_actions.add(str(payload.get("action_id")))
            elif kind == "action_executed":
                t.executed[str(payload.get("tool"))] += 1
                output = payload.get("output") or {}
                t.connectors[str(output.get("connector", "unknown"))] += 1
                action_id = str(payload.get("action_id"))
                t.sensitive_unapproved += action_id in sensitive_actions and action_id not in approved_actions
            elif kind == "feedback":
                t.feedback += 1
        t.escalations += "escalated" in reached
        self._approvals(requests.values())

        disposition = str(verdict.get("disposition")) if verdict else "none"
        t.by_disposition[disposition] += 1
        t.by_status[status] += 1
        if status in FINAL_CASE_STATUSES:
            t.documented += received_count
        else:
            t.without_total += received_count
            if len(t.without) < limit:
                title = str(alert.payload.get("title", ""))
                t.without.append(CaseRef(case_id=case_id, received_at=received, status=status, title=title))
        alert_time = _parse_time(alert.payload.get("time"))
        if alert_time is not None:
            # A vendor clock ahead of ours would give a negative delay; detection cannot precede the event.
            t.mttd.append(max(0.0, _seconds(alert_time, received)))
        if verdict_at is not None:
            t.triage.append(_seconds(received, verdict_at))
        if "contained" in reached:
            t.mttc.append(_seconds(received, reached["contained"]))
        resolved = min((reached[s] for s in RESOLVED_STATUSES if s in reached), default=None)
        if resolved is not None:
            t.mttr.append(_seconds(received, resolved))
        if disposition == "true_positive":
            t.incidents += 1
            if resolved is None:
                t.open_incidents.append((case_id, received))
            elif _seconds(received, resolved) > self.params.notification_window_h * 3600:
                self._late(case_id, received, resolved, _seconds(received, resolved))
        self._integrity(case_id, entries, verification)
        return True

    def _alert(self, alert: Entry) -> None:
        t, payload = self.t, alert.payload
        t.alerts += 1
        t.by_source[_source_name(payload.get("source") or {})] += 1
        t.by_severity[str((payload.get("severity") or {}).get("label", "Unknown"))] += 1
        t.per_day[alert.ts.astimezone(UTC).date().isoformat()] += 1
        found = list(_mfa_fields(payload.get("unmapped") or {}))
        if found:
            t.mfa_alerts += 1
            for name, value in found[:_MFA_ROWS_PER_ALERT]:
                if len(t.mfa_rows) < self.limit:
                    t.mfa_rows.append(MfaRow(case_id=alert.case_id, field=name, value=value))

    def _llm_call(self, payload: dict[str, Any]) -> None:
        t = self.t
        call = LlmCall.model_validate(payload)
        t.tokens += TokenTotals.of(call)
        t.llm_failed += bool(call.error)
        if call.latency_ms is not None:
            t.llm_latency.append(float(call.latency_ms))
        t.calls_by_model[call.model or "unknown"] += 1

    def _approvals(self, requests: Iterable[_Approval]) -> None:
        t = self.t
        for request in requests:
            t.approvals_total += 1
            if request.outcome is None:
                t.undecided.append(request.expires_at)
            else:
                t.approval_outcomes[request.outcome] += 1
                t.approvers[request.approver or "?"] += 1
                if request.decided_at is not None:
                    t.approval_latency.append(_seconds(request.requested_at, request.decided_at))
            if len(t.approvals) < self.limit:
                t.approvals.append(request)

    def _late(self, case_id: str, received: datetime, resolved: datetime | None, seconds: float) -> None:
        t = self.t
        t.late_total += 1
        if len(t.late) < self.limit:
            t.late.append(
                LateIncident(
                    case_id=case_id,
                    received_at=received,
                    resolved_at=resolved,
                    hours=round(seconds / 3600, 2),
                )
            )

    def _integrity(self, case_id: str, entries: Sequence[Entry], check: CaseVerification | None) -> None:
        t = self.t
        if check is None:
            # Unverified chains may be read sparsely (only the kinds the report uses): seq counts them.
            last = entries[-1]
            t.entries += last.seq
            t.checks.append(
                CaseIntegrity(
                    case_id=case_id,
                    result="not_verified",
                    entries=last.seq,
                    head_seq=last.seq,
                    head_hash=last.hash,
                )
            )
            return
        t.entries += check.entries
        t.checks.append(_integrity_row(case_id, check))

    def verified(self, checks: Mapping[str, CaseVerification]) -> None:
        """Replace the integrity rows of cases already added with results verified elsewhere (in parallel)."""
        t = self.t
        for index, row in enumerate(t.checks):
            check = checks.get(row.case_id)
            if check is not None:
                t.entries -= row.entries
                t.checks[index] = _integrity_row(row.case_id, check)
                t.entries += check.entries

    def case_ids(self) -> list[str]:
        """The cases folded in so far."""
        return [row.case_id for row in self.t.checks]

    def report(
        self,
        method: str = "verified",
        carried_from: datetime | None = None,
        checkpoint: CheckpointCitation | None = None,
    ) -> EvidenceReport:
        t, p = self.t, self.params
        as_of = p.until or t.newest
        window_s = p.notification_window_h * 3600
        if as_of is not None:
            for case_id, received in t.open_incidents:
                if _seconds(received, as_of) > window_s:
                    self._late(case_id, received, None, _seconds(received, as_of))
        lapsed = sum(1 for expires in t.undecided if expires is not None and as_of and expires <= as_of)
        outcomes = Counter(t.approval_outcomes)
        if t.undecided:
            outcomes.update({"lapsed": lapsed, "pending": len(t.undecided) - lapsed})
        histogram = Counter[str]()
        for seconds in t.triage:
            histogram[next(label for label, bound in VERDICT_BUCKETS if seconds < bound)] += 1
        volume = Volume(
            alerts=t.alerts,
            cases=t.cases,
            by_source=_sorted(t.by_source),
            by_severity=_sorted(t.by_severity),
            by_disposition=_sorted(t.by_disposition),
            by_status=_sorted(t.by_status),
            per_day=dict(sorted(t.per_day.items())),
        )
        result = Outcomes(
            documented=t.documented,
            share=round(t.documented / t.alerts, 6) if t.alerts else None,
            without=t.without,
            without_total=t.without_total,
        )
        timings = Timings(
            mttd=percentiles(t.mttd),
            time_to_triage=percentiles(t.triage),
            mttc=percentiles(t.mttc),
            mttr=percentiles(t.mttr),
            verdict_histogram={label: histogram[label] for label, _ in VERDICT_BUCKETS},
            notification_window_h=p.notification_window_h,
            incidents=t.incidents,
            incidents_outside_window=t.late_total,
            outside=sorted(t.late, key=lambda late: (late.received_at, late.case_id)),
        )
        actions = Actions(
            by_tool=[
                ActionRow(
                    tool=tool,
                    allow=counts["allow"],
                    needs_approval=counts["needs_approval"],
                    deny=counts["deny"],
                    executed=t.executed[tool],
                )
                for tool, counts in sorted(t.decisions.items())
            ],
            approvals_requested=t.approvals_total,
            approvals_by_outcome=_sorted(outcomes),
            approval_latency=percentiles(t.approval_latency),
            approvers=_sorted(t.approvers),
            approvals=[self._approval_row(a, as_of) for a in t.approvals],
            denials=[
                DenialRow(rule_id=rule, count=count, reason=t.denial_reason[rule])
                for rule, count in _sorted(t.denials).items()
            ],
            rate_limit_hits=t.rate_limit_hits,
            sensitive_targets=t.sensitive,
            sensitive_without_approval=t.sensitive_unapproved,
            executed_by_connector=_sorted(t.connectors),
        )
        usage = ModelUsage(
            calls=t.tokens.calls,
            failed_calls=t.llm_failed,
            prompt_tokens=t.tokens.prompt_tokens,
            completion_tokens=t.tokens.completion_tokens,
            total_tokens=t.tokens.total_tokens,
            latency_ms=percentiles(t.llm_latency),
            calls_by_model=_sorted(t.calls_by_model),
            verdicts_by_model=_sorted(t.verdicts_by_model),
            fallbacks_to_builtin=t.fallbacks,
            escalations=t.escalations,
            escalation_reasons=_sorted(t.escalation_reasons),
            verdict_rejections=t.verdict_rejections,
            injection_flags=t.injection_flags,
            feedback=t.feedback,
        )
        integrity = _integrity(t.checks, t.entries, method, carried_from)
        mfa = Mfa(alerts_with_mfa_fields=t.mfa_alerts, rows=t.mfa_rows)
        return EvidenceReport(
            tenant=p.tenant,
            generated_at=p.generated_at,
            period=Period(since=p.since, until=p.until, as_of=as_of),
            volume=volume,
            outcomes=result,
            timings=timings,
            actions=actions,
            model=usage,
            integrity=integrity,
            mfa=mfa,
            requirements=requirements(volume, result, timings, actions, integrity, mfa, checkpoint),
            list_limit=self.limit,
            checkpoint=checkpoint,
        )

    @staticmethod
    def _approval_row(a: _Approval, as_of: datetime | None) -> ApprovalRow:
        outcome = a.outcome
        if outcome is None:
            lapsed = a.expires_at is not None and as_of is not None and a.expires_at <= as_of
            outcome = "lapsed" if lapsed else "pending"
        latency = None if a.decided_at is None else round(_seconds(a.requested_at, a.decided_at), 3)
        return ApprovalRow(
            case_id=a.case_id,
            action_id=a.action_id,
            tool=a.tool,
            requested_at=a.requested_at,
            approver=a.approver,
            outcome=outcome,  # type: ignore[arg-type]  # the graph writes approved/rejected/expired
            decided_at=a.decided_at,
            latency_s=latency,
        )
