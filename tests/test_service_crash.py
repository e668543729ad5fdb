"""No loss, no double action: real `soctriage serve` / `soctriage worker` processes are SIGKILLed while alerts
arrive and cases run; after a restart every accepted alert's case reaches a verdict state, no action ran twice,
and every ledger verifies. On SQLite (embedded, in-process workers) and PostgreSQL (procrastinate, separate
worker processes)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx2
import pytest
from service_support import alert_variants, free_port, service_env, start, wait_healthy
from soctriage.service.config import Settings
from soctriage.service.domain import FINAL_CASE_STATUSES
from soctriage.service.store import Store
from typer.testing import CliRunner

VERDICT_STATES = FINAL_CASE_STATUSES | {"awaiting_approval"}
ALERTS = 40


class Poster(threading.Thread):
    """Posts alerts one by one and remembers which ones the server answered 202 for."""

    def __init__(self, base_url: str, bodies: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.base_url, self.bodies = base_url, bodies
        self.accepted: dict[str, str] = {}
        self.sent = 0

    def run(self) -> None:
        with httpx2.Client(timeout=5) as client:
            for body in self.bodies:
                try:
                    response = client.post(f"{self.base_url}/v1/alerts", content=body)
                except httpx2.HTTPError:
                    return  # the server was killed
                self.sent += 1
                if response.status_code == 202:
                    for item in response.json()["accepted"]:
                        self.accepted[item["alert_id"]] = item["case_id"]


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def wait_for_verdicts(settings: Settings, case_ids: set[str], timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    with Store.open(settings) as store:
        while True:
            statuses = {c.id: c.status for c in store.list_cases(limit=10_000)}
            if all(statuses.get(c) in VERDICT_STATES for c in case_ids) or time.monotonic() > deadline:
                return statuses
            time.sleep(0.2)


def wait_for_some_verdicts(settings: Settings, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with Store.open(settings) as store:
        while sum(c.status in VERDICT_STATES for c in store.list_cases(limit=1000)) < count:
            assert time.monotonic() < deadline, f"fewer than {count} verdicts after {timeout_s}s"
            time.sleep(0.1)


def assert_no_loss_and_no_double_action(settings: Settings, accepted: dict[str, str], statuses: dict) -> None:
    missing = {a: c for a, c in accepted.items() if c not in statuses}
    assert not missing, f"accepted alerts without a case: {missing}"
    stuck = {c: statuses[c] for c in accepted.values() if statuses[c] not in VERDICT_STATES}
    assert not stuck, f"cases that never reached a verdict state: {stuck}"
    with Store.open(settings) as store:
        for case_id in accepted.values():
            keys = [
                e.payload["idempotency_key"] for e in store.entries(case_id) if e.kind == "action_executed"
            ]
            assert len(keys) == len(set(keys)), f"{case_id} acted twice: {keys}"
        assert store.verify(None).ok


def max_attempts(settings: Settings, query: str) -> int:
    with Store.open(settings) as store, store.engine.connect() as conn:
        return int(conn.exec_driver_sql(query).scalar() or 0)


def crash_env(home: Path, **extra: str) -> dict[str, str]:
    # Short leases so a killed worker's jobs are claimed again within seconds.
    return service_env(home, SOCTRIAGE_JOB_LEASE_S="1.5", SOCTRIAGE_SQLITE_SYNCHRONOUS="NORMAL", **extra)


def test_sigkill_of_serve_loses_no_alert_and_repeats_no_action_sqlite(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = crash_env(home, SOCTRIAGE_WORKER_CONCURRENCY="3")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bodies = list(alert_variants(ALERTS))
    accepted: dict[str, str] = {}
    # Kill the server twice while alerts stream in and cases run, then let a third one finish the work.
    for round_number, cut in enumerate((ALERTS // 3, 2 * ALERTS // 3)):
        server = start(["serve", "--port", str(port)], env, tmp_path / "serve.log")
        wait_healthy(base, server)
        poster = Poster(base, [b for b in bodies if not _sent(b, accepted)][: cut - len(accepted) + 5])
        poster.start()
        while poster.is_alive() and len(poster.accepted) < cut - len(accepted) - round_number:
            time.sleep(0.01)
        time.sleep(0.3)  # let some triage jobs start
        kill(server)
        poster.join(timeout=10)
        accepted.update(poster.accepted)
    server = start(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        wait_healthy(base, server)
        rest = Poster(base, [b for b in bodies if not _sent(b, accepted)])
        rest.run()
        accepted.update(rest.accepted)
        assert len(accepted) == ALERTS
        settings = Settings(home=home)
        statuses = wait_for_verdicts(settings, set(accepted.values()), timeout_s=60)
        assert_no_loss_and_no_double_action(settings, accepted, statuses)
        assert max_attempts(settings, "SELECT max(attempts) FROM jobs") >= 2, "no kill landed mid-job"
    finally:
        kill(server)


def _sent(body: bytes, accepted: dict[str, str]) -> bool:
    from soctriage.service.domain import Alert
    from soctriage.service.ingest import normalize_bytes

    [alert] = [a for a in normalize_bytes(body, "x") if isinstance(a, Alert)]
    return alert.id in accepted


@pytest.mark.postgres
def test_sigkill_of_workers_loses_no_alert_and_repeats_no_action_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    home = tmp_path / "home"
    env = crash_env(home, SOCTRIAGE_DATABASE_URL=pg_url, SOCTRIAGE_WORKER_CONCURRENCY="3")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start(["serve", "--port", str(port), "--workers", "0"], env, tmp_path / "serve.log")
    workers = [start(["worker"], env, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        wait_healthy(base, server)
        poster = Poster(base, list(alert_variants(ALERTS)))
        poster.start()
        while poster.is_alive() and len(poster.accepted) < ALERTS // 2:
            time.sleep(0.01)
        settings = Settings(home=home, database_url=pg_url)
        wait_for_some_verdicts(settings, 3, timeout_s=30)  # the workers are up and running jobs
        assert all(w.poll() is None for w in workers), "a worker died on its own"
        kill(workers[0])  # mid-stream, with jobs running
        kill(server)  # and the API while alerts arrive
        poster.join(timeout=10)
        accepted = dict(poster.accepted)
        time.sleep(0.5)
        kill(workers[1])
        server = start(["serve", "--port", str(port), "--workers", "0"], env, tmp_path / "serve.log")
        workers = [start(["worker"], env, tmp_path / "worker2.log")]
        wait_healthy(base, server)
        rest = Poster(base, [b for b in alert_variants(ALERTS) if not _sent(b, accepted)])
        rest.run()
        accepted.update(rest.accepted)
        assert len(accepted) == ALERTS
        statuses = wait_for_verdicts(settings, set(accepted.values()), timeout_s=90)
        assert_no_loss_and_no_double_action(settings, accepted, statuses)
        # A stalled job of the killed worker was handed to another one (procrastinate counts the retry).
        assert max_attempts(settings, "SELECT max(attempts) FROM procrastinate_jobs") >= 1
    finally:
        for proc in [server, *workers]:
            if proc.poll() is None:
                kill(proc)


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(home: Path) -> None:
    from soctriage.service.cli import app

    runner = CliRunner()
    created = runner.invoke(
        app, ["keys", "create", "--tenant", "acme", "--role", "approver", "--name", "ann"]
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("stk_")
    with Store.open(Settings()) as store, store.engine.connect() as conn:
        dump = json.dumps([list(r) for r in conn.exec_driver_sql("SELECT * FROM api_keys")], default=str)
    assert token not in dump
    listed = runner.invoke(app, ["keys", "list"])
    header, row = listed.stdout.splitlines()
    assert header.split() == ["key", "id", "name", "tenant", "role", "state"]
    assert row.split()[1:] == ["ann", "acme", "approver", "active"] and token not in listed.stdout
    bad = runner.invoke(app, ["keys", "create", "--tenant", "acme", "--role", "root"])
    assert bad.exit_code == 2 and "role" in bad.stderr
