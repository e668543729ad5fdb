"""Case transcripts: JSONL that re-verifies offline, and Markdown/HTML an auditor can read safely."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from soctriage.service.domain import Severity, Verdict
from soctriage.service.ledger_events import (
    ActionExecuted,
    ApprovalDecided,
    ApprovalRequested,
    GuardDecisionRecorded,
)
from soctriage.service.store import CaseNotFoundError, Store, verify_entries
from soctriage.service.store.transcript import export_transcript, read_entries, summarize
from test_store import make_alert

HOSTILE = '<script>alert("x")</script> | `rm -rf` ![img](http://evil/x.png)'


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    with Store.open() as opened:
        yield opened


def _case_with_story(store: Store) -> str:
    case = store.create_case(make_alert(title=HOSTILE), "acme")
    store.set_status(case.id, "triaging", "triage_agent", "first look")
    store.append(case.id, "enrichment_agent", "tool_result", {"tool": "intel.hash", "verdict": HOSTILE})
    store.set_verdict(
        case.id,
        Verdict(
            disposition="true_positive",
            severity=Severity.of(4),
            confidence=0.87,
            techniques=("T1059.001",),
            summary=HOSTILE,
            rationale="r",
            evidence=(1, 3),
        ),
    )
    return case.id


def test_jsonl_round_trips_and_reverifies_offline(store: Store) -> None:
    case_id = _case_with_story(store)
    exported = export_transcript(store, case_id, "jsonl")

    entries = list(read_entries(exported.splitlines(), "case.jsonl"))
    assert entries == store.entries(case_id)
    head = store.verify([case_id]).cases[0]
    assert verify_entries(entries, head_seq=head.head_seq, head_hash=head.head_hash) is None

    lines = exported.splitlines()
    edited = json.loads(lines[2])
    edited["payload"]["verdict"] = "clean"
    lines[2] = json.dumps(edited)
    problem = verify_entries(read_entries(lines))
    assert problem is not None and (problem.seq, problem.reason) == (
        3,
        "entry 3 hash mismatch: content was edited",
    )
    assert verify_entries(read_entries(lines[:-1]), head_hash=head.head_hash) is not None


def test_read_entries_names_the_line_and_field() -> None:
    with pytest.raises(ValueError, match=r"case\.jsonl:2: not JSON"):
        list(read_entries(["", "{oops"], "case.jsonl"))
    with pytest.raises(ValueError, match=r"case\.jsonl:1: field case_id: Field required"):
        list(read_entries(['{"seq": 1}'], "case.jsonl"))


def test_markdown_has_header_timeline_and_verification(store: Store) -> None:
    case_id = _case_with_story(store)
    md = export_transcript(store, case_id, "md")

    assert f"# Case transcript {case_id}" in md
    for expected in (
        "| Tenant | acme |",
        "| Status | triaging |",
        "| Reached triaging |",
        "true_positive (High",
    ):
        assert expected in md
    assert "| 2 |" in md and "new → triaging: first look" in md
    head = store.verify([case_id]).cases[0]
    assert "Result: intact: 3 entries verified" in md
    assert f"hash `{head.head_hash}`" in md
    # Untrusted alert text cannot inject HTML or break the table.
    assert "<script>" not in md
    assert "&lt;script&gt;" in md and "\\| \\`rm -rf\\`" in md


def test_html_is_self_contained_and_escapes_everything(store: Store) -> None:
    case_id = _case_with_story(store)
    page = export_transcript(store, case_id, "html")

    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "<script" not in page and "src=" not in page and "<link" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "intact: 3 entries verified" in page and "class='ok'" in page
    # The PDF's actions section, in HTML too.
    assert "<h2>Actions and approvals</h2>" in page


def test_transcript_shows_a_failed_verification(store: Store) -> None:
    case_id = _case_with_story(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM ledger WHERE case_id = ? AND seq = 2", (case_id,))
    assert "FAILED at seq 2: seq 2 missing (deleted)" in export_transcript(store, case_id, "md")
    assert "class='bad'" in export_transcript(store, case_id, "html")


def test_unknown_case_or_format(store: Store) -> None:
    with pytest.raises(CaseNotFoundError):
        export_transcript(store, "case-000000000000", "md")
    case_id = _case_with_story(store)
    with pytest.raises(ValueError, match="unknown transcript format 'pdf'"):
        export_transcript(store, case_id, "pdf")  # type: ignore[arg-type]


def test_summaries_are_short_and_readable(store: Store) -> None:
    case_id = _case_with_story(store)
    first, status, tool, *_ = store.entries(case_id)
    assert summarize(first).endswith("[High] on WS-042")
    assert summarize(status) == "new → triaging: first look"
    assert summarize(tool).startswith("tool=intel.hash, verdict=<script>")
    long = tool.model_copy(update={"payload": {"blob": "x" * 1000}})
    assert len(summarize(long)) == 160


def test_html_and_markdown_show_actions_and_approvals_like_the_pdf(store: Store) -> None:
    case_id = _case_with_story(store)
    action = {"action_id": "A2", "tool": "isolate_host"}
    approval = {**action, "args_hash": "h", "reason": None}
    store.append_many(
        case_id,
        [
            (
                "guard",
                "guard_decision",
                GuardDecisionRecorded(**action, decision="needs_approval", rule_id="dc_needs_approval"),
            ),
            (
                "guard",
                "approval_requested",
                ApprovalRequested(**approval, args={"hostname": "WS-042"}, expires_at="2030-01-01T00:00:00Z"),
            ),
            ("human:alice", "approval_decided", ApprovalDecided(**approval, outcome="approved", detail="")),
            (
                "response_agent",
                "action_executed",
                ActionExecuted(**action, status="done", idempotency_key="k"),
            ),
        ],
    )
    page = export_transcript(store, case_id, "html")
    section = page.split("<h2>Actions and approvals</h2>", 1)[1].split("<h2>", 1)[0]
    for cell in (
        "A2",
        "isolate_host",
        "needs_approval (dc_needs_approval)",
        "approved by alice",
        "seq 7 (done)",
    ):
        assert f"<td>{cell}</td>" in section
    md = export_transcript(store, case_id, "md")
    assert (
        "| A2 | isolate_host | needs_approval (dc_needs_approval) | approved by alice | seq 7 (done) |" in md
    )
