"""The command line for scripts and new users: the version, the store every command names, reads that never
create a store, verification of nothing failing, JSON on every read command, tables with headers and a progress
bar only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import Result
from soctriage.service.cli import app
from soctriage.service.store import Store
from test_cli import SAMPLES, SOCTRIAGE
from typer.testing import CliRunner


class Outcome:
    """A command's exit code and its two streams, kept apart as a script sees them."""

    def __init__(self, result: Result) -> None:
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr


def run(home: Path, *args: str) -> Outcome:
    """The command in this process (the graph stack is imported once): much faster than a new interpreter."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOCTRIAGE_HOME", str(home))
        env.delenv("SOCTRIAGE_DATABASE_URL", raising=False)
        return Outcome(CliRunner().invoke(app, list(args)))


def stderr_store(result: Outcome) -> str:
    return next(line for line in result.stderr.splitlines() if line.startswith("store: "))


def test_version() -> None:
    result = subprocess.run([*SOCTRIAGE, "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout.strip() == f"soctriage {metadata.version('soctriage')}"


def test_reads_in_an_empty_place_fail_clearly_and_create_nothing(tmp_path: Path) -> None:
    home = tmp_path / "nothing-here"
    verify = run(home, "ledger", "verify", "--all")
    assert verify.returncode == 1
    assert f"no store at {home / 'soctriage.db'}" in verify.stderr
    assert "verified" not in verify.stdout
    for args in (["cases", "list"], ["cases", "show", "case-x"], ["keys", "list"], ["report", "evidence"]):
        result = run(home, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "no store at" in result.stderr, args
    assert not home.exists()  # no read made a store, or even its folder


def test_verifying_nothing_or_a_missing_case_does_not_pass(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = run(home, "keys", "create", "--tenant", "acme", "--role", "viewer")  # a store with no case
    assert created.returncode == 0, created.stderr
    empty = run(home, "ledger", "verify", "--all")
    assert empty.returncode == 1 and "nothing was verified" in empty.stderr
    triaged = run(home, "triage", "--json", str(SAMPLES / "crowdstrike-test-detection.json"))
    case_id = json.loads(triaged.stdout)["case_id"]
    missing = run(home, "ledger", "verify", "case-doesnotexist", case_id)
    assert missing.returncode == 1
    assert "case-doesnotexist: FAILED: case case-doesnotexist does not exist" in missing.stderr
    assert "seq None" not in missing.stderr
    as_json = run(home, "ledger", "verify", "--all", "--json")
    assert as_json.returncode == 0
    report = json.loads(as_json.stdout)
    assert report["ok"] and [c["case_id"] for c in report["cases"]] == [case_id]
    assert report["cases"][0]["head_seq"] == report["entries_checked"]


def test_every_read_command_speaks_json_and_tables_have_headers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    triaged = run(home, "triage", "--json", str(SAMPLES / "crowdstrike-lsass-dump.json"))
    assert triaged.returncode == 0, triaged.stderr
    assert stderr_store(triaged) == f"store: {home / 'soctriage.db'} (SQLite)"
    case_id = json.loads(triaged.stdout)["case_id"]

    listed = run(home, "cases", "list", "--json")
    assert [c["id"] for c in json.loads(listed.stdout)] == [case_id]
    assert stderr_store(listed)  # stdout is pure JSON; the store is named on stderr
    table = run(home, "cases", "list").stdout.splitlines()
    assert table[0].split() == ["case", "tenant", "created", "(UTC)", "status", "disposition", "summary"]
    assert table[1].startswith(case_id)

    shown = run(home, "cases", "show", case_id, "--json")
    view = json.loads(shown.stdout)
    assert view["case"]["id"] == case_id and view["case"]["status"] == "awaiting_approval"
    isolate = next(a for a in view["actions"] if a["tool"] == "isolate_host")
    assert isolate["status"] == "awaiting_approval"
    text = run(home, "cases", "show", case_id).stdout
    assert f"case        {case_id}" in text and "status      awaiting_approval" in text
    assert "verdict     true_positive" in text and f"{isolate['id']}" in text and "isolate_host" in text
    with_ledger = json.loads(run(home, "cases", "show", case_id, "--json", "--ledger").stdout)
    assert [e["seq"] for e in with_ledger["ledger"]] == list(range(1, len(with_ledger["ledger"]) + 1))

    run(home, "keys", "create", "--tenant", "acme", "--role", "viewer", "--name", "ci")
    keys = json.loads(run(home, "keys", "list", "--json").stdout)
    assert [(k["name"], k["tenant"], k["role"], k["revoked_at"]) for k in keys] == [
        ("ci", "acme", "viewer", None)
    ]
    assert run(home, "keys", "list").stdout.splitlines()[0].split() == [
        "key",
        "id",
        "name",
        "tenant",
        "role",
        "state",
    ]

    report = run(home, "report", "evidence", "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["integrity"]["failed"] == 0

    suites = json.loads(run(home, "eval", "list", "--json").stdout)
    assert {s["name"] for s in suites} >= {"redteam", "sigma", "vendor"}
    assert run(home, "eval", "list").stdout.splitlines()[0].split() == [
        "suite",
        "kind",
        "cases",
        "from",
        "description",
    ]


def test_the_default_store_is_the_user_data_folder_not_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, data_home = tmp_path / "somewhere", tmp_path / "user" / ".local" / "share"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("SOCTRIAGE_HOME")
    monkeypatch.delenv("SOCTRIAGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    result = CliRunner().invoke(app, ["triage", str(SAMPLES / "crowdstrike-test-detection.json")])
    assert result.exit_code == 0, result.stderr
    store = data_home / "soctriage" / "soctriage.db"
    assert f"store: {store} (SQLite)" in result.stderr
    assert store.is_file() and list(cwd.iterdir()) == []


def test_triage_shows_a_progress_bar_on_a_terminal_and_nothing_when_piped(tmp_path: Path) -> None:
    files = [str(p) for p in sorted(SAMPLES.iterdir())][:2]
    piped = run(tmp_path / "piped", "triage", "--json", *files)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stderr and "triage [" not in piped.stderr

    leader, follower = pty.openpty()
    env = {**os.environ, "SOCTRIAGE_HOME": str(tmp_path / "tty")}
    proc = subprocess.Popen(
        [*SOCTRIAGE, "triage", "--json", *files], stdout=subprocess.PIPE, stderr=follower, env=env
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is done with it
            break
        if not chunk:
            break
        seen += chunk
    stdout, _ = proc.communicate(timeout=300)
    os.close(leader)
    assert proc.returncode == 0
    assert f"[{'#' * 30}] {len(files)}/{len(files)}".encode() in seen
    assert len(stdout.decode().splitlines()) == len(files)  # results on stdout, untouched by the bar
    assert b"\x1b" not in stdout


def test_a_server_store_is_named_without_its_password() -> None:
    from soctriage.service.store import store_label

    assert store_label("postgresql://soc:s3cret@db.internal:5432/soctriage") == (
        "postgresql://soc:***@db.internal:5432/soctriage (PostgreSQL)"
    )


@pytest.mark.postgres
def test_a_read_never_creates_the_schema_on_an_empty_postgresql_database(pg_url: str) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOCTRIAGE_DATABASE_URL", pg_url)
        result = CliRunner().invoke(app, ["cases", "list"])
        assert result.exit_code == 2 and "no store at postgresql://" in result.stderr
        verify = CliRunner().invoke(app, ["ledger", "verify", "--all"])
        assert verify.exit_code == 1 and "no store at" in verify.stderr
    import psycopg

    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables.fetchone() == (0,)


def test_an_alert_another_writer_stored_first_answers_with_its_case_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve`'s intake or another `triage` may store the alert between this command's lookup and its insert:
    the store refuses the second copy, and the command answers with the existing case, as POST /v1/alerts does."""
    home, sample = tmp_path / "home", str(SAMPLES / "crowdstrike-test-detection.json")
    first = json.loads(run(home, "triage", "--json", sample).stdout)
    monkeypatch.setattr(
        Store, "find_case_by_alert", lambda *_: None
    )  # the other writer came after the lookup
    again = run(home, "triage", "--json", sample)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert (result["case_id"], result["duplicate"]) == (first["case_id"], True)
    assert len(json.loads(run(home, "cases", "list", "--json").stdout)) == 1
