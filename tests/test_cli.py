"""The `soctriage` command line as a user runs it: real processes, exit codes, messages, files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from soctriage.service.config import Settings
from soctriage.service.store import Store

SAMPLES = Path(str(resources.files("soctriage.service").joinpath("samples")))
SOCTRIAGE = [sys.executable, "-m", "soctriage.service.cli"]


def run(home: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOCTRIAGE_HOME": str(home)}
    env.pop("SOCTRIAGE_DATABASE_URL", None)
    proc = subprocess.run(
        [*SOCTRIAGE, *args], input=stdin, capture_output=True, env=env, timeout=300, check=False
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def test_normalize_prints_one_alert_per_record(tmp_path: Path) -> None:
    files = sorted(str(p) for p in SAMPLES.iterdir())
    result = run(tmp_path, "normalize", *files)
    assert result.returncode == 0, result.stderr
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(alerts) == len(files)
    assert {a["source"]["format"] for a in alerts} == {
        "crowdstrike",
        "defender",
        "sentinelone",
        "elastic",
        "wazuh",
        "ocsf",
    }


def test_bad_records_exit_2_name_file_line_and_are_quarantined(tmp_path: Path) -> None:
    good = (SAMPLES / "wazuh-admin-sudo-benign.json").read_text().strip().replace("\n", " ")
    data = (
        b"\n".join([good.encode(), b"{bad json", b"\xff\xfe{}", b'{"just": "a dict"}', good.encode()]) + b"\n"
    )
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(data)
    result = run(tmp_path / "home", "normalize", str(path))
    assert result.returncode == 2
    assert len(result.stdout.splitlines()) == 2  # both good records still processed
    store_line, *lines = result.stderr.splitlines()
    assert store_line == f"store: {tmp_path / 'home' / 'soctriage.db'} (SQLite)"
    assert lines[0].startswith(f"{path}:2: invalid JSON")
    assert lines[1].startswith(f"{path}:3: not valid UTF-8: byte 0xff")
    assert lines[2].startswith(f"{path}:4: unknown alert format")
    with Store.open(Settings(home=tmp_path / "home")) as store:
        kept = store.list_quarantine()
    assert sorted(r.rejection.line for r in kept) == [2, 3, 4]
    assert {r.rejection.raw for r in kept} == {b"{bad json", b"\xff\xfe{}", b'{"just": "a dict"}'}


def test_oversized_line_is_rejected_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as fh:
        fh.write(b'{"x": "' + b"a" * (50 * 1024 * 1024) + b'"}\n')
    result = run(tmp_path / "home", "normalize", str(path))
    assert result.returncode == 2
    assert f"{path}:1: record is" in result.stderr and "limit is" in result.stderr


def test_format_flag_mismatch_and_unknown_format(tmp_path: Path) -> None:
    wazuh = str(SAMPLES / "wazuh-admin-sudo-benign.json")
    mismatch = run(tmp_path, "normalize", "--format", "crowdstrike", wazuh)
    assert mismatch.returncode == 2
    assert "--format crowdstrike given but the record looks like wazuh" in mismatch.stderr
    unknown = run(tmp_path, "normalize", "--format", "splunk", wazuh)
    assert unknown.returncode == 2 and "unknown format 'splunk'" in unknown.stderr
    missing = run(tmp_path, "normalize", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_stdin_input(tmp_path: Path) -> None:
    data = (SAMPLES / "crowdstrike-test-detection.json").read_bytes()
    result = run(tmp_path, "normalize", "-", stdin=data)
    assert result.returncode == 0 and json.loads(result.stdout)["source"]["format"] == "crowdstrike"


def test_triage_json_then_approve_in_another_process_then_verify_and_export(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run(home, "triage", "--json", str(SAMPLES / "crowdstrike-lsass-dump.json"))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) >= {
        "case_id", "alert_id", "status", "disposition", "severity", "confidence", "techniques", "actions", "ledger_entries"
    }  # fmt: skip
    assert out["status"] == "awaiting_approval" and "T1003.001" in out["techniques"]
    isolate = next(a for a in out["actions"] if a["tool"] == "isolate_host")
    assert set(isolate) >= {"id", "tool", "target", "decision", "status"}

    approved = run(
        home, "approve", out["case_id"], isolate["id"], "--by", "alice", "--reason", "confirmed dump"
    )
    assert approved.returncode == 0, approved.stderr
    assert f"{isolate['id']}:isolate_host(DC01)=needs_approval/executed" in approved.stdout
    again = run(home, "approve", out["case_id"], isolate["id"], "--by", "alice")
    assert again.returncode == 2 and "no pending action" in again.stderr

    shown = run(home, "cases", "show", out["case_id"], "--ledger")
    assert "approval_decided" in shown.stdout and "human:alice" in shown.stdout
    assert run(home, "ledger", "verify", out["case_id"]).returncode == 0
    exported = run(home, "ledger", "export", out["case_id"], "--format", "jsonl")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    html = run(home, "ledger", "export", out["case_id"], "--format", "html")
    assert html.stdout.startswith("<!DOCTYPE html>") or html.stdout.lower().startswith("<!doctype html>")


def test_ledger_verify_names_the_tampered_case_and_seq(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run(home, "triage", "--json", str(SAMPLES / "crowdstrike-test-detection.json"))
    case_id = json.loads(result.stdout)["case_id"]
    assert run(home, "ledger", "verify", "--all").returncode == 0
    with sqlite3.connect(home / "soctriage.db") as db:
        db.execute(
            "UPDATE ledger SET payload = '{\"forged\": true}' WHERE case_id = ? AND seq = 2", (case_id,)
        )
    verify = run(home, "ledger", "verify", "--all")
    assert verify.returncode == 1
    assert f"{case_id}: FAILED at seq 2" in verify.stderr
    assert run(home, "ledger", "verify").returncode == 2  # usage: neither ids nor --all


def test_triage_rejects_bad_records_but_triages_the_rest(tmp_path: Path) -> None:
    good = (SAMPLES / "crowdstrike-test-detection.json").read_text()
    path = tmp_path / "batch.json"
    path.write_text("[" + good + ", 42]")
    result = run(tmp_path / "home", "triage", str(path))
    assert result.returncode == 2
    assert "closed" in result.stdout and "benign_true_positive" in result.stdout
    element_line = good.count("\n") + 1  # where `42` starts
    assert f"{path}:{element_line}: record is a number, not a JSON object" in result.stderr


def test_concurrent_triage_keeps_input_order_and_runs_a_redelivered_alert_once(tmp_path: Path) -> None:
    samples = sorted(SAMPLES.iterdir())
    first = samples[0]
    files = [str(p) for p in samples] + [str(first)]  # the first alert again, while it may still be running
    result = run(tmp_path / "home", "triage", "--json", "--concurrency", "4", *files)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    with Store.open(Settings(home=tmp_path / "home")) as store:
        assert lines[-1]["duplicate"] and lines[-1]["case_id"] == lines[0]["case_id"]
        assert len({line["case_id"] for line in lines}) == len(samples)
        verdicts = store.entries(lines[0]["case_id"], kind="verdict")
        assert len(verdicts) == 1  # one run of the case, not two racing each other
        assert store.verify().ok
    sequential = run(tmp_path / "again", "triage", "--json", "--concurrency", "1", *files)
    in_order = [json.loads(line)["alert_id"] for line in sequential.stdout.splitlines()]
    assert in_order == [line["alert_id"] for line in lines]


@pytest.mark.parametrize("name", ["agents", "tools", "service", "evals", "prompts"])
def test_bare_folder_imports_do_not_shadow_the_namespace(name: str, tmp_path: Path) -> None:
    """The mandated folders are installed as soctriage.<name>; a bare import must not resolve to them."""
    code = f"import importlib.util, sys; spec = importlib.util.find_spec({name!r}); print(spec.origin if spec else '')"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    origin = proc.stdout.strip()
    repo = str(Path(__file__).resolve().parents[1])
    assert not origin.startswith(repo), f"bare `import {name}` resolves to the project: {origin}"
    __import__(f"soctriage.{name}")
