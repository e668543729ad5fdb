"""What the human-readable report says, independent of format: a cover, sections of tables, two charts.

Markdown, HTML and PDF all render this one layout, so the three never disagree about a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from soctriage.service.domain import format_ts
from soctriage.service.reports.model import CheckpointCitation, EvidenceReport, Percentiles, Provenance
from soctriage.service.reports.requirements import fmt_duration

# Heads listed in the human formats; the JSON report always has every one.
HEADS_SHOWN = 50
# More daily bars than this are merged into weeks so the chart stays legible.
MAX_DAILY_BARS = 62


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    numeric: frozenset[int] = frozenset()


@dataclass(frozen=True)
class BarChart:
    title: str
    labels: list[str]
    values: list[int]
    x_title: str
    y_title: str


@dataclass(frozen=True)
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    chart: BarChart | None = None


@dataclass(frozen=True)
class Layout:
    title: str
    subtitle: str
    headline: list[tuple[str, str]]
    sections: list[Section]


def _when(value: datetime | None, empty: str = "-") -> str:
    return empty if value is None else format_ts(value)[:19].replace("T", " ") + " UTC"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _counts(title: str, counts: dict[str, int]) -> Table:
    total = sum(counts.values()) or 1
    rows = [(key, str(value), f"{value / total:.1%}") for key, value in counts.items()]
    return Table((title, "Alerts", "Share"), rows or [("-", "0", "-")], frozenset({1, 2}))


def _percentile_row(name: str, p: Percentiles) -> tuple[str, ...]:
    return (name, str(p.count), fmt_duration(p.p50), fmt_duration(p.p90), fmt_duration(p.max))


def volume_chart(per_day: dict[str, int]) -> BarChart:
    labels, values = list(per_day), list(per_day.values())
    unit = "day"
    if len(labels) > MAX_DAILY_BARS:
        weeks: dict[str, int] = {}
        for day, count in per_day.items():
            date = datetime.fromisoformat(day).date()
            monday = date.fromordinal(date.toordinal() - date.weekday()).isoformat()
            weeks[monday] = weeks.get(monday, 0) + count
        labels, values, unit = list(weeks), list(weeks.values()), "week"
    return BarChart(f"Alert volume per {unit}", labels, values, f"{unit} (UTC)", "alerts")


def _period(since: datetime | None, until: datetime | None) -> str:
    if since and until:
        return f"alerts received from {_when(since)} to {_when(until)}"
    if since:
        return f"alerts received from {_when(since)} on"
    if until:
        return f"alerts received before {_when(until)}"
    return "all alerts received"


def _checkpoint_section(c: CheckpointCitation | None) -> Section:
    if c is None:
        return Section(
            "Signed checkpoint",
            [
                "No signed checkpoint covers these cases yet. Run `soctriage ledger checkpoint`; workers sign "
                "one every SOCTRIAGE_CHECKPOINT_INTERVAL_S while cases change."
            ],
        )
    covered = (
        "The report's cases were not checked against it."
        if c.covered is None
        else f"It covers {c.covered} of this report's cases; {len(c.problems)} problem(s) found: every case it "
        "covers must still exist with a chain that passes through the head it committed."
    )
    previous = next(
        (line.split(" ", 1)[1] for line in c.note.splitlines() if line.startswith("previous ")), "-"
    )
    return Section(
        "Signed checkpoint",
        [
            f"Checkpoint #{c.number} of {c.origin}, signed {_when(c.signed_at)}, commits to the chain heads of "
            f"{c.cases} case(s) in a Merkle tree of {c.tree_size} leaves (RFC 6962; C2SP signed note, Ed25519). "
            f"Signature: {c.signature_check}. {covered}",
            "Check it independently with the public key you recorded: save the note (the JSON report holds it "
            "byte for byte) and run soctriage ledger verify --all --checkpoint NOTE --pubkey KEY.",
        ],
        [
            Table(
                ("Checkpoint", "Value"),
                [
                    ("Origin (log and scope)", c.origin),
                    ("Number", str(c.number)),
                    ("Signed at", _when(c.signed_at)),
                    ("Tree size", str(c.tree_size)),
                    ("Cases committed", str(c.cases)),
                    ("Root hash (base64)", c.root_hash),
                    ("Previous checkpoint (sha256)", previous),
                    ("Signature line", c.signature),
                    ("Public key fingerprint (sha256)", c.key_fingerprint),
                    ("Verifier key", c.verifier_key or "-"),
                ],
            ),
            Table(("Problem against the checkpoint",), [(problem,) for problem in c.problems]),
        ],
    )


def _provenance_section(p: Provenance | None) -> Section:
    if p is None:
        return Section("Software and policy in force", ["Not recorded for this report."])
    return Section(
        "Software and policy in force",
        [
            f"soctriage {p.soctriage_version}. Guard policy: {p.policy}. Prompt files by sha256, as every "
            "llm_call ledger entry records the ones it used."
        ],
        [
            Table(
                ("In force when the report was made", "sha256"),
                [
                    ("guard policy", p.policy_sha256 or "unreadable"),
                    *((f"prompt {name}", digest) for name, digest in p.prompts.items()),
                ],
            )
        ],
    )


def build_layout(report: EvidenceReport) -> Layout:
    r = report
    scope = f"tenant {r.tenant}" if r.tenant else "all tenants"
    integ = r.integrity
    headline = [
        ("Alerts received", str(r.volume.alerts)),
        ("Cases (alerts of one incident share one)", str(r.volume.cases)),
        ("With a documented outcome", f"{_share(r.outcomes.share)} ({r.outcomes.documented})"),
        ("Median time to verdict", fmt_duration(r.timings.time_to_triage.p50)),
        ("Median time to containment", fmt_duration(r.timings.mttc.p50)),
        (
            f"Incidents outside the {r.timings.notification_window_h:g} h window",
            f"{r.timings.incidents_outside_window} of {r.timings.incidents}",
        ),
        ("Human approvals requested", str(r.actions.approvals_requested)),
        (
            "Ledgers intact",
            f"{integ.ok} of {integ.cases} ({integ.method.replace('_', ' ')})",
        ),
        (
            "Signed checkpoint",
            "none yet"
            if r.checkpoint is None
            else f"#{r.checkpoint.number}, signature {r.checkpoint.signature_check.split(':', 1)[0]}",
        ),
    ]
    sections = [
        Section(
            "Insurer requirements",
            ["Each row points at the sections below that hold its evidence."],
            [
                Table(
                    ("Requirement", "Status", "Evidence", "Sections"),
                    [(q.requirement, q.status, q.evidence, ", ".join(q.sections)) for q in r.requirements],
                )
            ],
        ),
        Section(
            "Alert volume",
            [
                f"{r.volume.alerts} alerts received in the period, in {r.volume.cases} cases, by source, "
                "severity and disposition."
            ],
            [
                _counts("Source", r.volume.by_source),
                _counts("Severity", r.volume.by_severity),
                _counts("Disposition", r.volume.by_disposition),
                _counts("Case status", r.volume.by_status),
            ],
            volume_chart(r.volume.per_day),
        ),
        Section(
            "Documented outcomes",
            [
                f"{r.outcomes.documented} of {r.volume.alerts} alerts ({_share(r.outcomes.share)}) reached a "
                "documented outcome: contained, closed, escalated to an analyst, or failed, with the reason "
                "in the ledger. Target: 100%.",
                f"{r.outcomes.without_total} without"
                + (f" (first {len(r.outcomes.without)} listed)" if r.outcomes.without_total else "")
                + ".",
            ],
            [
                Table(
                    ("Case", "Received", "Status", "Alert"),
                    [(c.case_id, _when(c.received_at), c.status, c.title) for c in r.outcomes.without],
                )
            ]
            if r.outcomes.without
            else [],
        ),
        Section(
            "Response times",
            [
                "MTTD: alert time at the vendor to receipt. Time to verdict: receipt to the verdict entry. "
                "MTTC: receipt to containment. MTTR: receipt to containment or closure.",
                f"{r.timings.incidents_outside_window} of {r.timings.incidents} incident(s) (true positives) "
                f"took longer than the {r.timings.notification_window_h:g} h notification window from "
                "receipt to resolution, or are still open past it.",
            ],
            [
                Table(
                    ("Measure", "Cases", "p50", "p90", "Max"),
                    [
                        _percentile_row("MTTD (alert to receipt)", r.timings.mttd),
                        _percentile_row("Time to verdict", r.timings.time_to_triage),
                        _percentile_row("MTTC (to containment)", r.timings.mttc),
                        _percentile_row("MTTR (to containment or closure)", r.timings.mttr),
                    ],
                    frozenset({1}),
                ),
                *(
                    [
                        Table(
                            ("Incident", "Received", "Resolved", "Hours"),
                            [
                                (
                                    i.case_id,
                                    _when(i.received_at),
                                    _when(i.resolved_at, "open"),
                                    f"{i.hours:g}",
                                )
                                for i in r.timings.outside
                            ],
                            frozenset({3}),
                        )
                    ]
                    if r.timings.outside
                    else []
                ),
            ],
            BarChart(
                "Time to verdict",
                list(r.timings.verdict_histogram),
                list(r.timings.verdict_histogram.values()),
                "time from receipt to verdict",
                "cases",
            ),
        ),
        Section(
            "Response actions",
            [
                "Every action the response agent proposed, and what the policy guard decided. The guard, "
                "not the model, decides.",
                f"{r.actions.sensitive_targets} action(s) aimed at a privileged identity, a high or critical "
                f"asset or a domain controller; {r.actions.sensitive_without_approval} of them carried out "
                f"without a human approval. Rate-limit denials: {r.actions.rate_limit_hits}.",
            ],
            [
                Table(
                    ("Tool", "Allowed", "Needs approval", "Denied", "Carried out"),
                    [
                        (a.tool, str(a.allow), str(a.needs_approval), str(a.deny), str(a.executed))
                        for a in r.actions.by_tool
                    ],
                    frozenset({1, 2, 3, 4}),
                ),
                Table(
                    ("Denied by rule", "Count", "Reason"),
                    [(d.rule_id, str(d.count), d.reason) for d in r.actions.denials],
                    frozenset({1}),
                ),
            ],
        ),
        Section(
            "Approvals",
            [
                f"{r.actions.approvals_requested} approval(s) requested; "
                + (", ".join(f"{k} {v}" for k, v in r.actions.approvals_by_outcome.items()) or "none")
                + f". Latency from request to decision: p50 {fmt_duration(r.actions.approval_latency.p50)}, "
                f"p90 {fmt_duration(r.actions.approval_latency.p90)}.",
            ],
            [
                Table(
                    ("Case", "Action", "Tool", "Requested", "Approver", "Outcome", "Latency"),
                    [
                        (
                            a.case_id,
                            a.action_id,
                            a.tool,
                            _when(a.requested_at),
                            a.approver or "-",
                            a.outcome,
                            fmt_duration(a.latency_s),
                        )
                        for a in r.actions.approvals
                    ],
                )
            ],
        ),
        Section(
            "Model usage",
            [
                f"{r.model.calls} model call(s) ({r.model.failed_calls} failed), {r.model.total_tokens} tokens "
                f"({r.model.prompt_tokens} prompt, {r.model.completion_tokens} completion); call latency p50 "
                f"{fmt_duration(None if r.model.latency_ms.p50 is None else r.model.latency_ms.p50 / 1000)}.",
                f"Fallbacks to the built-in analyst: {r.model.fallbacks_to_builtin}. Escalations to a human: "
                f"{r.model.escalations}. Verdicts rejected for citing missing evidence: "
                f"{r.model.verdict_rejections}. Alerts flagged for prompt injection: {r.model.injection_flags}. "
                f"Analyst feedback entries: {r.model.feedback}.",
            ],
            [
                Table(
                    ("Verdicts by analyst model", "Verdicts"),
                    [(k, str(v)) for k, v in r.model.verdicts_by_model.items()],
                    frozenset({1}),
                ),
                Table(
                    ("Escalation reason", "Cases"),
                    [(k, str(v)) for k, v in r.model.escalation_reasons.items()],
                    frozenset({1}),
                ),
            ],
        ),
        Section(
            "Ledger integrity",
            [
                f"Method: {integ.method.replace('_', ' ')}"
                + (f" (results of the report made {_when(integ.carried_from)})" if integ.carried_from else "")
                + f". {integ.ok} of {integ.cases} case ledger(s) intact, {integ.failed} failed, "
                f"{integ.unverified} not verified; {integ.entries} entries.",
                f"Digest of every chain head (sha256 of sorted 'case seq head' lines): {integ.heads_digest}. "
                "Record it: a later report over the same cases must show the same digest.",
                f"Every head is in the JSON report; the first {HEADS_SHOWN} are listed here.",
            ],
            [
                Table(
                    ("Failed case", "Problem", "Entries"),
                    [(c.case_id, c.problem or "-", str(c.entries)) for c in integ.failures],
                    frozenset({2}),
                ),
                Table(
                    ("Case", "Result", "Head seq", "Head hash"),
                    [
                        (c.case_id, c.result, str(c.head_seq), c.head_hash or "-")
                        for c in integ.heads[:HEADS_SHOWN]
                    ],
                    frozenset({2}),
                ),
            ],
        ),
        _checkpoint_section(r.checkpoint),
        _provenance_section(r.provenance),
        Section(
            "MFA evidence",
            [
                f"{r.mfa.alerts_with_mfa_fields} alert(s) carry multi-factor authentication fields from the "
                "vendor (identity-protection policies, MFA required or used)."
            ],
            [Table(("Case", "Vendor field", "Value"), [(m.case_id, m.field, m.value) for m in r.mfa.rows])],
        ),
    ]
    return Layout(
        title=r.title,
        subtitle=f"{scope}, {_period(r.period.since, r.period.until)}; generated {_when(r.generated_at)}",
        headline=headline,
        sections=sections,
    )
