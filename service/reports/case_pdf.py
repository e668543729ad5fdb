"""One case as a PDF for an auditor: summary, verdict and its evidence, actions and approvals, timeline,
verification. Everything except the case header is read from the case's ledger."""

from __future__ import annotations

from collections.abc import Sequence

from soctriage.service.domain import Case, LedgerEntry, format_ts
from soctriage.service.reports.layout import Layout, Section, Table
from soctriage.service.store.chain import CaseVerification
from soctriage.service.store.errors import CaseNotFoundError
from soctriage.service.store.store import Store
from soctriage.service.store.transcript import ACTION_HEAD, action_rows, summarize

HASH_PREFIX = 12


def _when(entry: LedgerEntry) -> str:
    return format_ts(entry.ts)[:23].replace("T", " ")


def case_layout(case: Case, entries: Sequence[LedgerEntry], check: CaseVerification) -> Layout:
    by_seq = {entry.seq: entry for entry in entries}
    alert = next((e for e in entries if e.kind == "alert_received"), None)
    verdict = case.verdict
    verified = f"intact, {check.entries} entries" if check.ok else f"FAILED at seq {check.bad_seq}"
    header = [
        ("Case", case.id),
        ("Tenant", case.tenant),
        ("Status", case.status),
        ("Alert", str(alert.payload.get("title", "?")) if alert else "-"),
        ("Alert ids", ", ".join(case.alert_ids)),
        ("Created", format_ts(case.created_at)),
        *[(f"Reached {status}", format_ts(ts)) for status, ts in case.status_times.items()],
    ]
    verdict_rows = (
        [
            ("Disposition", verdict.disposition),
            ("Severity", verdict.severity.label),
            ("Confidence", f"{verdict.confidence:.2f}"),
            ("Techniques", ", ".join(verdict.techniques) or "-"),
            ("Summary", verdict.summary),
            ("Rationale", verdict.rationale),
            ("Recommended actions", ", ".join(verdict.recommended_actions) or "-"),
        ]
        if verdict
        else [("Verdict", "none yet")]
    )
    evidence = [
        (str(seq), by_seq[seq].kind, summarize(by_seq[seq]))
        for seq in (verdict.evidence if verdict else ())
        if seq in by_seq
    ]
    return Layout(
        title=f"Case report {case.id}",
        subtitle=f"tenant {case.tenant}; {len(entries)} ledger entries; ledger {verified}",
        headline=[
            ("Status", case.status),
            ("Verdict", verdict.disposition if verdict else "none"),
            ("Confidence", f"{verdict.confidence:.2f}" if verdict else "-"),
            ("Ledger", verified),
        ],
        sections=[
            Section("Case", [], [Table(("Field", "Value"), header)]),
            Section(
                "Verdict and evidence",
                ["The ledger entries the verdict cites as its evidence follow the verdict."],
                [Table(("Field", "Value"), verdict_rows), Table(("Seq", "Kind", "Evidence"), evidence)],
            ),
            Section(
                "Actions and approvals",
                ["Each proposed action, the policy guard's decision, the human decision, and the result."],
                [Table(ACTION_HEAD, action_rows(entries))],
            ),
            Section(
                "Timeline",
                [],
                [
                    Table(
                        ("Seq", "Time (UTC)", "Actor", "Kind", "Summary", "Hash"),
                        [
                            (str(e.seq), _when(e), e.actor, e.kind, summarize(e), e.hash[:HASH_PREFIX])
                            for e in entries
                        ],
                        frozenset({0}),
                    )
                ],
            ),
            Section(
                "Verification",
                [
                    f"Result: {verified}" + ("" if check.ok else f": {check.problem}"),
                    f"Head: seq {check.head_seq}, hash {check.head_hash}",
                    "Re-check offline: soctriage ledger export CASE --format jsonl --out CASE.jsonl, then "
                    "soctriage ledger verify-file CASE.jsonl --pubkey KEY (or the standalone proof.py).",
                ],
            ),
        ],
    )


def case_pdf(store: Store, case_id: str) -> bytes:
    """The case report as PDF. Raises `CaseNotFoundError` for an unknown case."""
    from soctriage.service.reports.render_pdf import render_pdf

    case = store.get_case(case_id)
    if case is None:
        raise CaseNotFoundError(case_id)
    [check] = store.verify([case_id]).cases
    return render_pdf(case_layout(case, store.entries(case_id), check))
