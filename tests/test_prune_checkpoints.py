"""`soctriage cases prune-checkpoints`: cases that finished before runs pruned their own checkpoints keep only
their last; a case paused for a human keeps every checkpoint and still resumes. Real processes, on SQLite and
(marker `postgres`) PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from soctriage.agents.run import Triager
from soctriage.agents.state import initial_state
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, Attack, Device, Process, Severity, Source, User
from soctriage.service.store import Store

SOCTRIAGE = [sys.executable, "-m", "soctriage.service.cli"]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def restart_by_sudo(n: int) -> Alert:
    """An operator restarting a web server: the builtin finishes it without asking anyone."""
    return Alert(
        id=f"prune-sudo-{n}",
        source=Source(vendor="wazuh", product="wazuh", format="wazuh", vendor_alert_id=f"s{n}"),
        time=datetime(2026, 4, 1, 9, 0, n, tzinfo=UTC),
        severity=Severity.of(2),
        title="Successful sudo to ROOT executed",
        device=Device(hostname=f"WEB-{n:02d}"),
        user=User(name="deploy"),
        process=Process(name="sudo", cmdline="sudo systemctl restart nginx"),
        raw=json.dumps({"rule": "5402", "n": n}),
    )


def lsass_dump_on_dc() -> Alert:
    """Credential dumping on a domain controller: its containment waits for a human."""
    cmdline = r"rundll32.exe C:\Windows\System32\comsvcs.dll, MiniDump 744 C:\Users\Public\m.bin full"
    return Alert(
        id="prune-dump-1",
        source=Source(vendor="crowdstrike", product="falcon", format="crowdstrike", vendor_alert_id="d1"),
        time=datetime(2026, 4, 1, 9, 5, tzinfo=UTC),
        severity=Severity.of(5),
        title="LSASS memory read by rundll32",
        attacks=(Attack(tactic="Credential Access", tactic_id="TA0006", technique_id="T1003.001"),),
        device=Device(hostname="DC01"),
        user=User(name="svc-sql", domain="CORP"),
        process=Process(name="rundll32.exe", pid=744, cmdline=cmdline),
        raw=json.dumps({"id": "d1", "cmdline": cmdline}),
    )


async def cases_as_old_runs_left_them(settings: Settings) -> tuple[str, str, str]:
    """Two finished cases and a paused one, run on the graph itself (as runs did before they pruned their
    own checkpoints), and one case triaged as runs are now."""
    ids = []
    async with Triager(settings) as triager:
        for alert in (restart_by_sudo(1), restart_by_sudo(2), lsass_dump_on_dc()):
            case = triager.store.create_case(alert, settings.tenant)
            config = {"configurable": {"thread_id": case.id}}
            await triager.graph.ainvoke(initial_state(case.id, case.tenant), config, context=triager.deps)
            ids.append(case.id)
        await triager.triage(restart_by_sudo(3))
    first, second, paused = ids
    return first, second, paused


def checkpoints_of(settings: Settings) -> dict[str, int]:
    query = "SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id"
    if settings.database_url:
        import psycopg  # the postgres extra; only the PostgreSQL run gets here

        with psycopg.connect(settings.database_url) as conn:
            return dict(conn.execute(query).fetchall())
    with sqlite3.connect(settings.home / "checkpoints.db") as conn:
        return dict(conn.execute(query).fetchall())


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOCTRIAGE_HOME": str(settings.home)}
    env.pop("SOCTRIAGE_DATABASE_URL", None)
    if settings.database_url:
        env["SOCTRIAGE_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [*SOCTRIAGE, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_finished_cases_keep_their_last_checkpoint_and_a_paused_case_still_resumes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    database_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    first, second, paused = await cases_as_old_runs_left_them(settings)
    before = checkpoints_of(settings)
    assert before[first] > 1 and before[second] > 1 and before[paused] > 1
    assert sorted(before.values()).count(1) == 1  # the case triaged as runs are now

    pruned = run(settings, "cases", "prune-checkpoints", "--json")

    assert pruned.returncode == 0, pruned.stderr
    report = json.loads(pruned.stdout)
    after = checkpoints_of(settings)
    assert after == before | {first: 1, second: 1}
    assert report["cases"] == 2 and report["unfinished"] == 1
    assert report["checkpoints"] == before[first] + before[second] - 2
    assert report["bytes"] > 0

    shown = json.loads(run(settings, "cases", "show", first, "--json").stdout)
    assert [a["tool"] for a in shown["actions"]] == ["create_ticket"]  # read from the checkpoint kept
    pending = json.loads(run(settings, "cases", "show", paused, "--json").stdout)["actions"]
    isolate = next(a for a in pending if a["tool"] == "isolate_host")
    assert isolate["status"] == "awaiting_approval"
    approved = run(settings, "approve", paused, isolate["id"], "--by", "alice", "--reason", "confirmed")
    assert approved.returncode == 0, approved.stderr
    with Store.open(settings) as store:
        executed = [e.payload for e in store.entries(paused, kind="action_executed")]
    assert [(e["tool"], e["args"]["hostname"]) for e in executed if e["tool"] == "isolate_host"] == [
        ("isolate_host", "DC01")
    ]

    again = run(settings, "cases", "prune-checkpoints")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("pruned 0 finished case(s): 0 checkpoint(s), 0 bytes freed;")


def test_a_home_without_checkpoints_prunes_nothing_and_creates_nothing(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    result = run(settings, "cases", "prune-checkpoints", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"cases": 0, "checkpoints": 0, "bytes": 0, "unfinished": 0}
    assert not (settings.home / "checkpoints.db").exists()
