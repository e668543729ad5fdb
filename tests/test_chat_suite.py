"""The chat eval suite (`kind: chat`): the builtin assistant passes its gates through `soctriage eval run`, and a
model that answers nothing useful fails them; scoring matches facts as whole tokens."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from fakes import ScriptedOpenAI, reply
from soctriage.evals.chat_report import build_chat_report
from soctriage.evals.chat_suite import (
    Expect,
    appears,
    load_chat_suite,
    run_chat_suite,
    score_answer,
)
from soctriage.evals.suite import SuiteError, load_spec, load_suite, suite_dir
from soctriage.service.cli import app
from test_graph import llm_settings
from typer.testing import CliRunner

TOPICS = {
    "summary",
    "why",
    "timeline",
    "entities",
    "pending_actions",
    "evidence",
    "runbook",
    "similar_cases",
    "refusal",
}


def test_builtin_assistant_passes_the_chat_suite(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "run", "chat", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "gates passed" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] and report["metrics"]["pass_rate"]["value"] == 1.0
    assert {row["status"] for row in report["alerts"]} >= TOPICS
    assert report["metrics"]["unexpected_proposals"]["value"] == 0
    by_id = {row["id"]: row for row in report["alerts"]}
    # The faults this suite was written for: pending lists only what is pending, a repeated containment
    # request proposes nothing, the runbook is the one that fits.
    assert "A2" not in by_id["credential-dump-fin-ws-042#5"]["answer"].split()
    assert "Already done" in by_id["ransomware-dc01#9"]["answer"]
    assert "ransomware-precursors.md" in by_id["ransomware-dc01#8"]["answer"]
    assert "false-positive-feedback" not in by_id["ransomware-dc01#8"]["answer"]
    assert (out / "report.md").is_file() and len(list((out / "ledgers").glob("*.jsonl"))) == 6


async def test_a_model_that_says_nothing_useful_fails_the_gates(home: Path, tmp_path: Path) -> None:
    folder = suite_dir("chat")
    spec = load_spec(folder)
    suite = load_chat_suite(folder, spec)
    with ScriptedOpenAI([reply("Sure, done.")] * suite.questions) as fake:
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake))
        records = await run_chat_suite(
            suite,
            tmp_path / "run",
            model="openai:fake-model",
            base_settings=llm_settings(home, embedder="hashing"),
            http_client=client,
        )
    report = build_chat_report(spec, "openai:fake-model", records, tmp_path / "run")
    assert not report["passed"]
    assert report["metrics"]["pass_rate_refusal"]["value"] == 0.0
    assert report["metrics"]["fact_recall"]["value"] < 0.2
    assert {r.model for r in records} == {"openai:fake-model"}


def test_facts_match_whole_tokens_and_alternatives() -> None:
    assert appears("A2", "A2 isolate_host DC01") and not appears("A2", "sha 9fa2b1")
    assert appears("no action", "No  action is waiting")
    expect = Expect(facts=["DC01", ["cannot", "can't"]], absent=["{case:x}"], cites=["verdict"], proposes=0)
    scores = score_answer(
        expect, "DC01: I can't. See case-1", {"verdict"}, 0, lambda t: t.replace("{case:x}", "case-1")
    )
    assert scores["missing"] == [] and scores["unwanted"] == ["case-1"] and not scores["passed"]
    proposed = score_answer(Expect(), "ok", set(), 1, str)
    assert proposed["unexpected_proposals"] == 1 and not proposed["passed"]


def test_a_chat_suite_is_not_loaded_as_a_triage_suite_and_bad_references_are_named(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="kind: a chat suite, not a triage suite"):
        load_suite("chat")
    (tmp_path / "suite.yaml").write_text("name: t\nkind: chat\ncases: cases.jsonl\n")
    case = {
        "id": "a",
        "alert": {},
        "questions": [{"topic": "summary", "ask": "hi", "expect": {"facts": ["{case:zz}"]}}],
    }
    (tmp_path / "cases.jsonl").write_text(json.dumps(case) + "\n")
    with pytest.raises(SuiteError, match=r"case a question 1: field expect: \{case:zz\}"):
        load_chat_suite(tmp_path, load_spec(tmp_path))
    (tmp_path / "cases.jsonl").write_text(
        json.dumps({"id": "a", "alert": {}, "questions": [{"ask": "x"}]}) + "\n"
    )
    with pytest.raises(SuiteError, match=r"cases.jsonl:1: field questions.0.topic"):
        load_chat_suite(tmp_path, load_spec(tmp_path))
