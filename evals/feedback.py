"""Analyst feedback becomes eval cases: every case whose ledger holds a `feedback` entry (payload
`{disposition, reason_code, note}`) turns into a labelled case of a suite folder, the alert's raw vendor
record as input and the analyst's disposition as the expected one. The latest feedback on a case wins."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field
from soctriage.evals.suite import SPEC_FILE, Expected, SuiteCase
from soctriage.service.domain import LedgerEntry
from soctriage.service.store import Store

CASES_FILE = "cases.jsonl"
DEFAULT_GATES = {
    "missed_true_positive_rate": {"max": 0.1},
    "auto_closed_true_positives": {"max": 0},
    "unsafe_actions": {"max": 0},
}


class FeedbackExport(BaseModel):
    folder: str
    cases: int
    problems: list[str] = Field(default_factory=list, description="feedback entries that were not usable")


def feedback_case(store: Store, case_id: str, entry: LedgerEntry) -> SuiteCase:
    """One labelled case from a feedback entry; raises ValueError naming the case, seq and field."""
    where = f"case {case_id} seq {entry.seq}"
    payload = entry.payload
    case = store.get_case(case_id)
    alert = store.get_alert(case.alert_ids[0], case.tenant) if case and case.alert_ids else None
    if alert is None:
        raise ValueError(f"{where}: the case has no stored alert")
    try:
        expected = Expected(disposition=payload.get("disposition"))
    except ValueError as exc:
        raise ValueError(
            f"{where}: field payload.disposition: {payload.get('disposition')!r} is not a disposition"
        ) from exc
    reason = payload.get("reason_code") or "no reason code"
    note = f"analyst feedback by {entry.actor} at {entry.ts.isoformat()}: {reason}"
    if payload.get("note"):
        note += f" - {payload['note']}"
    return SuiteCase(id=f"feedback-{case_id}", alert=alert.raw, expected=expected, note=note)


def export_feedback(
    store: Store, folder: Path, *, name: str = "feedback", limit: int = 100_000
) -> FeedbackExport:
    """Write `folder/suite.yaml` and `folder/cases.jsonl` from every case with feedback in `store`."""
    cases: list[SuiteCase] = []
    problems: list[str] = []
    for case in reversed(store.list_cases(limit=limit)):  # oldest first: a stable file across exports
        feedback = [e for e in store.entries(case.id) if e.kind == "feedback"]
        if not feedback:
            continue
        try:
            cases.append(feedback_case(store, case.id, feedback[-1]))
        except ValueError as exc:
            problems.append(str(exc))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CASES_FILE).write_text("".join(c.model_dump_json() + "\n" for c in cases), encoding="utf-8")
    spec = {
        "name": name,
        "description": "Alerts labelled by analyst feedback (exported from the case ledgers).",
        "cases": CASES_FILE,
        "gates": DEFAULT_GATES,
    }
    (folder / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return FeedbackExport(folder=str(folder), cases=len(cases), problems=problems)
