"""What the triage graph keeps in its LangGraph checkpoints: no alert, and for a finished case only its last."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from soctriage.agents.lifecycle import Decision
from soctriage.agents.run import Triager
from soctriage.service.config import Settings
from soctriage.service.store import Store
from test_cli import SAMPLES, run
from test_graph import kinds, ledger, sample, triager


def checkpoint_rows(home: Path, case_id: str) -> dict[str, int]:
    with sqlite3.connect(home / "checkpoints.db") as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table} WHERE thread_id = ?", (case_id,)).fetchone()[0]
            for table in ("checkpoints", "writes")
        }


async def test_a_case_paused_with_the_alert_in_its_checkpoint_still_resumes(home: Path) -> None:
    """Earlier versions kept the alert in the graph state. A case they paused for approval has a checkpoint
    with an `alert` value: written here as they wrote it, by the saver's own serializer, then resumed."""
    settings = Settings(home=home)
    async with triager(settings) as t:
        paused = await t.triage(sample("crowdstrike-lsass-dump.json"))
        config = Triager._config(paused.case_id)
        saved = await t.graph.checkpointer.aget_tuple(config)
        assert saved is not None and saved.parent_config is not None
        assert "alert" not in saved.checkpoint["channel_values"]
        alert = t.store.get_alert(paused.alert_id, settings.tenant)
        checkpoint = saved.checkpoint
        checkpoint["channel_values"]["alert"] = alert
        checkpoint["channel_versions"]["alert"] = checkpoint["channel_versions"]["alert_seq"]
        # Same checkpoint id and parent: the row is replaced, and the interrupt's writes stay attached to it.
        await t.graph.checkpointer.aput(saved.parent_config, checkpoint, saved.metadata, {})
        legacy = await t.graph.checkpointer.aget_tuple(config)
        assert legacy is not None and "alert" in legacy.checkpoint["channel_values"]
    assert paused.status == "awaiting_approval"
    isolate = next(a for a in paused.actions if a.tool == "isolate_host")
    async with triager(settings) as t:  # a new process: nothing cached, the alert comes from the store
        resumed = await t.decide(
            paused.case_id, Decision(action_id=isolate.id, approve=True, by="alice", reason="confirmed")
        )
    assert next(a for a in resumed.actions if a.id == isolate.id).status == "executed"
    entries = ledger(settings, paused.case_id)
    assert [p["action_id"] for p in kinds(entries, "approval_decided")] == [isolate.id]
    assert len(kinds(entries, "action_executed")) == len(
        {p["idempotency_key"] for p in kinds(entries, "action_executed")}
    )
    with Store.open(settings) as store:
        assert store.verify([paused.case_id]).ok


# --- a finished case keeps its last checkpoint only ---------------------------------------------------------


def test_triage_keeps_one_checkpoint_per_finished_case_and_approve_still_resumes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    files = [str(SAMPLES / name) for name in sorted(p.name for p in SAMPLES.iterdir() if p.is_file())]
    triaged = run(home, "triage", "--json", *files)
    assert triaged.returncode == 0, triaged.stderr
    results = [json.loads(line) for line in triaged.stdout.splitlines()]
    finished = [r for r in results if r["status"] != "awaiting_approval"]
    waiting = [r for r in results if r["status"] == "awaiting_approval"]
    assert finished and waiting and len(results) == len(files)
    for result in finished:
        assert checkpoint_rows(home, result["case_id"]) == {"checkpoints": 1, "writes": 0}, result
    for result in waiting:  # left as they are until they finish
        assert checkpoint_rows(home, result["case_id"])["checkpoints"] > 1, result

    [paused] = [r for r in waiting if r["alert_id"] == sample("crowdstrike-lsass-dump.json").id]
    isolate = next(a for a in paused["actions"] if a["tool"] == "isolate_host")
    approved = run(home, "approve", paused["case_id"], isolate["id"], "--by", "alice")
    assert approved.returncode == 0, approved.stderr
    assert f"{isolate['id']}:isolate_host(DC01)=needs_approval/executed" in approved.stdout
    others = [a for a in paused["actions"] if a["status"] == "awaiting_approval" and a is not isolate]
    assert others and checkpoint_rows(home, paused["case_id"])["checkpoints"] > 1  # still waiting for them
    for action in others:
        rejected = run(home, "approve", paused["case_id"], action["id"], "--by", "alice", "--reject")
        assert rejected.returncode == 0, rejected.stderr
    assert checkpoint_rows(home, paused["case_id"]) == {"checkpoints": 1, "writes": 0}
    # The finished case's actions are read from its one checkpoint.
    shown = json.loads(run(home, "cases", "show", paused["case_id"], "--json").stdout)
    assert shown["case"]["status"] != "awaiting_approval"
    assert next(a for a in shown["actions"] if a["id"] == isolate["id"])["status"] == "executed"
    again = run(home, "approve", paused["case_id"], isolate["id"], "--by", "alice")
    assert again.returncode == 2 and "no pending action" in again.stderr
    assert run(home, "ledger", "verify", "--all").returncode == 0


@pytest.mark.postgres
async def test_on_postgresql_a_finished_case_keeps_one_checkpoint(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    def rows(case_id: str) -> dict[str, int]:
        with psycopg.connect(pg_url) as conn:
            return {
                table: conn.execute(
                    f"SELECT count(*) FROM {table} WHERE thread_id = %s", (case_id,)
                ).fetchone()[0]
                for table in ("checkpoints", "checkpoint_writes", "checkpoint_blobs")
            }

    settings = Settings(home=tmp_path / "home", database_url=pg_url)
    async with triager(settings) as t:
        closed = await t.triage(sample("crowdstrike-test-detection.json"))
        paused = await t.triage(sample("crowdstrike-lsass-dump.json"))
    assert closed.status == "closed" and paused.status == "awaiting_approval"
    assert rows(closed.case_id)["checkpoints"] == 1 and rows(closed.case_id)["checkpoint_writes"] == 0
    before = rows(paused.case_id)
    assert before["checkpoints"] > 1
    isolate = next(a for a in paused.actions if a.tool == "isolate_host")
    pending = [a for a in paused.actions if a.status == "awaiting_approval"]
    async with triager(settings) as t:
        for action in pending:
            final = await t.decide(
                paused.case_id,
                Decision(action_id=action.id, approve=action.tool == "isolate_host", by="dana"),
            )
    assert next(a for a in final.actions if a.id == isolate.id).status == "executed"
    after = rows(paused.case_id)
    assert after["checkpoints"] == 1 and after["checkpoint_writes"] == 0
    assert after["checkpoint_blobs"] < before["checkpoint_blobs"]
