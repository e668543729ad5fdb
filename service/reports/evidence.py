"""The evidence report, computed from ledger entries alone (DESIGN §2): a pure fold over case chains.

Entries arrive grouped by case, in seq order (the store streams them so; concatenated `ledger export`
transcripts are so too). Each case is reduced to a few facts and dropped, so memory grows with the number of
cases in the period, never with the number of entries. The same entries and verification results always give
the same report, which is what lets an auditor rebuild it from exported ledgers.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from soctriage.service.domain import FINAL_CASE_STATUSES
from soctriage.service.reports.model import (
    ActionRow,
    Actions,
    ApprovalRow,
    CaseIntegrity,
    CaseRef,
    CheckpointCitation,
    DenialRow,
    EvidenceReport,
    Integrity,
    LateIncident,
    Mfa,
    MfaRow,
    ModelUsage,
    Outcomes,
    Percentiles,
    Period,
    Requirement,
    Timings,
    Volume,
)
from soctriage.service.store.chain import CaseVerification, ChainChecker

DEFAULT_NOTIFICATION_WINDOW_H = 72.0
DEFAULT_LIST_LIMIT = 200
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
SENSITIVE_CRITICALITY = frozenset({"high", "critical"})
RATE_LIMIT_RULE_PREFIX = "rate_limits:"
_MFA_KEY = re.compile(r"mfa|multi_?factor|2fa|two_?factor", re.IGNORECASE)
_MFA_ROWS_PER_ALERT = 5


class Entry(Protocol):
    """What the report reads from a ledger entry: a `LedgerEntry`, or a store row with parsed fields."""

    @property
    def case_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class EvidenceParams:
    generated_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    tenant: str | None = None
    notification_window_h: float = DEFAULT_NOTIFICATION_WINDOW_H
    list_limit: int = DEFAULT_LIST_LIMIT

    def in_period(self, received_at: datetime) -> bool:
        return (self.since is None or received_at >= self.since) and (
            self.until is None or received_at < self.until
        )


def percentiles(values: Sequence[float]) -> Percentiles:
    """Nearest-rank p50/p90 and the maximum; deterministic and exact for any sample size."""
    if not values:
        return Percentiles()
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], 3)

    return Percentiles(count=len(ordered), p50=rank(0.5), p90=rank(0.9), max=round(ordered[-1], 3))


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _reason_bucket(reason: Any) -> str:
    # Reasons carry numbers and endpoint errors; keep their stable head so they group.
    text = str(reason or "unspecified").split(":", 1)[0]
    return re.sub(r"\d+(?:\.\d+)?", "N", text).strip()[:80] or "unspecified"


def _mfa_fields(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if _MFA_KEY.search(str(key)) and not isinstance(item, dict | list):
                yield sub, str(item)
            else:
                yield from _mfa_fields(item, sub)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _mfa_fields(item, f"{path}[{index}]")


def _is_sensitive(targets: Any) -> bool:
    return any(
        isinstance(t, dict)
        and (
            t.get("privileged") is True
            or t.get("criticality") in SENSITIVE_CRITICALITY
            or t.get("role") == "domain_controller"
        )
        for t in targets or ()
    )


@dataclass
class _Approval:
    case_id: str
    action_id: str
    tool: str
    requested_at: datetime
    expires_at: datetime | None
    approver: str | None = None
    outcome: str | None = None
    decided_at: datetime | None = None


@dataclass
class _Tally:
    """Everything the report needs, folded case by case."""

    alerts: int = 0
    cases: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    by_severity: Counter[str] = field(default_factory=Counter)
    by_disposition: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    per_day: Counter[str] = field(default_factory=Counter)
    documented: int = 0
    without: list[CaseRef] = field(default_factory=list)
    without_total: int = 0
    mttd: list[float] = field(default_factory=list)
    triage: list[float] = field(default_factory=list)
    mttc: list[float] = field(default_factory=list)
    mttr: list[float] = field(default_factory=list)
    incidents: int = 0
    late: list[LateIncident] = field(default_factory=list)
    late_total: int = 0
    open_incidents: list[tuple[str, datetime]] = field(default_factory=list)
    decisions: dict[str, Counter[str]] = field(default_factory=dict)
    executed: Counter[str] = field(default_factory=Counter)
    connectors: Counter[str] = field(default_factory=Counter)
    approvals: list[_Approval] = field(default_factory=list)
    approvals_total: int = 0
    approval_outcomes: Counter[str] = field(default_factory=Counter)
    approval_latency: list[float] = field(default_factory=list)
    approvers: Counter[str] = field(default_factory=Counter)
    undecided: list[datetime | None] = field(default_factory=list)
    denials: Counter[str] = field(default_factory=Counter)
    denial_reason: dict[str, str] = field(default_factory=dict)
    rate_limit_hits: int = 0
    sensitive: int = 0
    sensitive_unapproved: int = 0
    llm_calls: int = 0
    llm_failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    llm_latency: list[float] = field(default_factory=list)
    calls_by_model: Counter[str] = field(default_factory=Counter)
    verdicts_by_model: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    escalations: int = 0
    escalation_reasons: Counter[str] = field(default_factory=Counter)
    verdict_rejections: int = 0
    injection_flags: int = 0
    feedback: int = 0
    checks: list[CaseIntegrity] = field(default_factory=list)
    entries: int = 0
    mfa_alerts: int = 0
    mfa_rows: list[MfaRow] = field(default_factory=list)
    newest: datetime | None = None


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
                event = payload.get("event")
                t.fallbacks += event == "model_fallback"
                t.verdict_rejections += event == "verdict_rejected"
                t.injection_flags += event == "possible_prompt_injection"
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
        t.llm_calls += 1
        t.llm_failed += bool(payload.get("error"))
        t.prompt_tokens += int(payload.get("prompt_tokens") or 0)
        t.completion_tokens += int(payload.get("completion_tokens") or 0)
        t.total_tokens += int(payload.get("total_tokens") or 0)
        if isinstance(payload.get("latency_ms"), int | float):
            t.llm_latency.append(float(payload["latency_ms"]))
        t.calls_by_model[str(payload.get("model", "unknown"))] += 1

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
            calls=t.llm_calls,
            failed_calls=t.llm_failed,
            prompt_tokens=t.prompt_tokens,
            completion_tokens=t.completion_tokens,
            total_tokens=t.total_tokens,
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


def _source_name(source: dict[str, Any]) -> str:
    """Vendor and product, without saying the vendor twice ("Elastic" + "Elastic Security")."""
    vendor, product = str(source.get("vendor") or "?"), str(source.get("product") or "")
    if product.lower().startswith(vendor.lower()):
        return product
    return f"{vendor} {product}".strip()


def _sorted(counter: Mapping[str, int]) -> dict[str, int]:
    """Largest first, ties by name: a stable order for tables and for identical JSON."""
    return dict(sorted(((k, v) for k, v in counter.items() if v), key=lambda kv: (-kv[1], kv[0])))


def heads_digest(checks: Iterable[CaseIntegrity]) -> str:
    """One hash an auditor can record for every chain head at once (sorted 'case_id seq hash' lines)."""
    lines = sorted(f"{c.case_id} {c.head_seq} {c.head_hash}\n" for c in checks)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _integrity_row(case_id: str, check: CaseVerification) -> CaseIntegrity:
    return CaseIntegrity(
        case_id=case_id,
        result="ok" if check.ok else "failed",
        entries=check.entries,
        head_seq=check.head_seq,
        head_hash=check.head_hash,
        problem=None if check.problem is None else str(check.problem),
    )


def _integrity(
    checks: list[CaseIntegrity], entries: int, method: str, carried_from: datetime | None
) -> Integrity:
    ordered = sorted(checks, key=lambda c: c.case_id)
    unverified = [c for c in ordered if c.result == "not_verified"]
    failures = [c for c in ordered if c.result == "failed"]
    return Integrity(
        method=method,  # type: ignore[arg-type]
        cases=len(ordered),
        ok=sum(c.result == "ok" for c in ordered),
        failed=len(failures),
        unverified=len(unverified),
        entries=entries,
        heads_digest=heads_digest(ordered) if ordered else None,
        failures=failures,
        heads=ordered,
        carried_from=carried_from,
    )


def requirements(
    volume: Volume,
    outcomes: Outcomes,
    timings: Timings,
    actions: Actions,
    integrity: Integrity,
    mfa: Mfa,
    checkpoint: CheckpointCitation | None = None,
) -> list[Requirement]:
    """The insurer questionnaire rows, each pointing at the report sections that answer it."""
    none = volume.alerts == 0
    share = "-" if outcomes.share is None else f"{outcomes.share:.1%}"
    rows = [
        Requirement(
            requirement="EDR coverage with documented response",
            evidence=f"{volume.alerts} alerts from {len(volume.by_source)} source(s); {share} reached a "
            f"documented outcome; {outcomes.without_total} without",
            sections=["Alert volume", "Documented outcomes"],
            status="no data" if none else ("met" if outcomes.without_total == 0 else "gap"),
        ),
        Requirement(
            requirement="Incident response within timelines",
            evidence=f"time to verdict p90 {fmt_duration(timings.time_to_triage.p90)}, to containment p90 "
            f"{fmt_duration(timings.mttc.p90)}; {timings.incidents_outside_window} of {timings.incidents} "
            f"incident(s) outside the {timings.notification_window_h:g} h window",
            sections=["Response times"],
            status="no data" if none else ("met" if timings.incidents_outside_window == 0 else "gap"),
        ),
        Requirement(
            requirement="Audit-ready incident logs",
            evidence=f"{integrity.ok} of {integrity.cases} case ledger(s) intact ({integrity.method}), "
            f"{integrity.failed} failed, {integrity.unverified} not verified; {integrity.entries} entries; "
            + _checkpoint_evidence(checkpoint),
            sections=["Ledger integrity", "Signed checkpoint"],
            status="no data"
            if integrity.cases == 0
            else (
                "met"
                if integrity.failed == 0
                and integrity.unverified == 0
                and not (checkpoint and checkpoint.problems)
                else "gap"
            ),
        ),
        Requirement(
            requirement="Vendor / privileged access actions approved",
            evidence=f"{actions.sensitive_targets} action(s) on privileged identities or critical assets, "
            f"{actions.sensitive_without_approval} carried out without a human approval; "
            f"{actions.approvals_requested} approval(s) requested; {sum(r.deny for r in actions.by_tool)} "
            "denied by policy",
            sections=["Response actions", "Approvals"],
            status="no data"
            if not actions.by_tool
            else ("met" if actions.sensitive_without_approval == 0 else "gap"),
        ),
        Requirement(
            requirement="MFA enforcement evidence (where alerts carry it)",
            evidence=f"{mfa.alerts_with_mfa_fields} alert(s) carry MFA fields from the vendor"
            if mfa.alerts_with_mfa_fields
            else "no alert in the period carries MFA fields",
            sections=["MFA evidence"],
            status="met" if mfa.alerts_with_mfa_fields else "no data",
        ),
    ]
    return rows


def _checkpoint_evidence(checkpoint: CheckpointCitation | None) -> str:
    if checkpoint is None:
        return "no signed checkpoint yet"
    text = f"signed checkpoint #{checkpoint.number} ({checkpoint.signed_at:%Y-%m-%d %H:%M} UTC), signature "
    text += checkpoint.signature_check.split(":", 1)[0]
    if checkpoint.covered is not None:
        text += f", covers {checkpoint.covered} of these cases, {len(checkpoint.problems)} problem(s)"
    return text


def fmt_duration(seconds: float | None) -> str:
    """A duration for people: ms, s, min, h or d, whichever reads best."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def verify_chain(entries: Sequence[Entry]) -> CaseVerification:
    """Offline check of one exported chain: links and hashes (no stored head to compare the end with)."""
    checker = ChainChecker()
    for entry in entries:
        if checker.feed(entry) is not None:
            break
    problem = checker.finish()
    last = entries[-1] if entries else None
    return CaseVerification(
        str(checker.case_id),
        problem,
        checker.count,
        None if last is None else last.seq,
        None if last is None else last.hash,
    )


def group_by_case(entries: Iterable[Entry]) -> Iterator[list[Entry]]:
    """Consecutive entries of one case, as lists (entries must already be grouped by case)."""
    batch: list[Entry] = []
    for entry in entries:
        if batch and entry.case_id != batch[0].case_id:
            yield batch
            batch = []
        batch.append(entry)
    if batch:
        yield batch


def build_evidence(
    entries: Iterable[Entry],
    params: EvidenceParams,
    *,
    verifications: Mapping[str, CaseVerification] | None = None,
    checkpoint: CheckpointCitation | None = None,
) -> EvidenceReport:
    """The report over `entries` (grouped by case, seq order), e.g. concatenated `ledger export` files.

    Without `verifications`, each chain is verified here from its own entries (links and hashes; the end
    of a chain can only be checked against a head recorded elsewhere, so pass that in `verifications`).
    `checkpoint` is cited as given: rebuilding a store's report from its exports, pass the store's citation.
    """
    builder = EvidenceBuilder(params)
    for case in group_by_case(entries):
        check = verify_chain(case) if verifications is None else verifications.get(case[0].case_id)
        builder.add_case(case, check)
    return builder.report(checkpoint=checkpoint)


def parse_day(text: str, *, end: bool = False) -> datetime:
    """A CLI/API date: YYYY-MM-DD is a whole UTC day (`end` gives the next midnight, so --until includes
    the day named); a full ISO timestamp is used as given (UTC when it has no zone)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or ISO timestamp") from exc
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if end and len(text) == 10:
        value += timedelta(days=1)
    return value
