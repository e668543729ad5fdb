"""`soctriage eval run` runs a suite of any kind the same way: a chat suite declared in its data is triaged,
asked, scored by its own scorer and reported in the shape `eval compare` reads; the ExCyTIn questions are a
shipped chat suite built from their third-party data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from soctriage.evals.chat_suite import ChatSuite
from soctriage.evals.kinds import load_any_suite, size
from soctriage.evals.suite import Suite, SuiteError
from soctriage.service.cli import app
from typer.testing import CliRunner


def detection(uid: str, host: str, user: str) -> dict[str, Any]:
    return {
        "class_uid": 2004,
        "time": 1767225600000,
        "severity_id": 4,
        "metadata": {"product": {"name": "Probe EDR", "vendor_name": "Probe"}},
        "finding_info": {"uid": uid, "title": "Credential vault read by a script", "desc": "vault read"},
        "device": {"hostname": host},
        "actor": {"user": {"name": user}, "process": {"name": "cscript.exe", "cmd_line": "cscript v.vbs"}},
    }


def write_suite(folder: Path, gate: float) -> Path:
    """A chat suite of benchmark-style questions, each with one expected answer; the last one's is wrong."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.yaml").write_text(
        "name: vault-questions\nkind: chat\ndescription: who and where\ncases: cases.jsonl\n"
        f"gates:\n  pass_rate: {{min: {gate}}}\n"
    )

    def ask(text: str, answer: str) -> dict[str, Any]:
        return {"topic": "investigation", "ask": text, "expect": {"answer": answer}}

    case = {
        "id": "vault",
        "alert": detection("vq-1", "lab-ws-21", "r.okafor"),
        "questions": [
            ask("Which host raised this alert?", "lab-ws-21"),
            # Case, backticks and a final period are set aside, as ExCyTIn-Bench matches.
            ask("Which account ran the process?", "`R.Okafor`."),
            ask("Which host raised this alert?", "lab-ws-22"),
        ],
    }
    (folder / "cases.jsonl").write_text(json.dumps(case) + "\n")
    return folder


def test_eval_run_scores_a_chat_suite_and_compare_and_replay_treat_it_as_a_run(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOCTRIAGE_EMBEDDER", "hashing")
    runner = CliRunner()
    suite = write_suite(tmp_path / "suite", 0.6)
    first = runner.invoke(
        app, ["eval", "run", str(suite), "--model", "builtin", "--out", str(tmp_path / "a")]
    )
    assert first.exit_code == 0, first.output
    assert "vault-questions on builtin: 3/3 questions; pass_rate=0.6667" in first.output
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["kind"] == "chat" and report["passed"]
    assert [row["correct"] for row in report["alerts"]] == [True, True, False]
    assert report["alerts"][2]["missing"] == ["lab-ws-22"]
    assert report["metrics"]["pass_rate_investigation"] == {"value": 0.6667, "count": 3}

    # A stricter gate on the same data fails the run, and compare names the regressed gate.
    write_suite(tmp_path / "suite", 1.0)
    second = runner.invoke(
        app, ["eval", "run", str(suite), "--model", "builtin", "--out", str(tmp_path / "b")]
    )
    assert second.exit_code == 1 and "gates FAILED: pass_rate" in second.output
    compared = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"])
    assert compared.exit_code == 1, compared.output
    comparison = json.loads(compared.output)
    assert comparison["changes"] == [] and comparison["regressed"]

    replayed = runner.invoke(app, ["eval", "replay", str(tmp_path / "a"), "--model", "builtin"])
    assert replayed.exit_code == 2 and "a chat run, not a triage run" in replayed.output


def test_a_suite_of_either_kind_loads_by_what_its_data_declares(tmp_path: Path) -> None:
    excytin = load_any_suite("excytin-chat")
    assert isinstance(excytin, ChatSuite) and not excytin.spec.baseline
    assert size(excytin) == (104, "questions") and len(excytin.cases) == 74 and excytin.skipped == []
    assert all(q.expect.answer for case in excytin.cases for q in case.questions)
    redteam = load_any_suite("redteam")
    assert isinstance(redteam, Suite) and size(redteam) == (len(redteam.cases), "alerts")

    (tmp_path / "suite.yaml").write_text(
        "name: t\nkind: chat\nsource: {builder: sigma, data: x}\ngates:\n  pass_rate: {min: 1}\n"
    )
    with pytest.raises(SuiteError, match=r"field source\.builder: unknown 'sigma'; known: excytin"):
        load_any_suite(str(tmp_path))
    (tmp_path / "suite.yaml").write_text(
        "name: t\nkind: chat\nsource: {builder: excytin, data: x}\ngates:\n  accuracy: {min: 1}\n"
    )
    with pytest.raises(SuiteError, match=r"field gates: unknown metric\(s\) \['accuracy'\]"):
        load_any_suite(str(tmp_path))


def test_eval_list_shows_the_excytin_suite_as_a_chat_suite_kept_out_of_the_baseline() -> None:
    listed = CliRunner().invoke(app, ["eval", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [spec] = [s for s in json.loads(listed.output) if s["name"] == "excytin-chat"]
    assert spec["kind"] == "chat" and spec["baseline"] is False and spec["source"]["builder"] == "excytin"
