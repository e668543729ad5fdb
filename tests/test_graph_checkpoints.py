"""What the triage graph keeps in its LangGraph checkpoints: no alert, and for a finished case only its last."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from soctriage.agents.run import Triager
from soctriage.service.config import Settings
from soctriage.service.store import Store
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
        resumed = await t.decide(paused.case_id, isolate.id, approve=True, by="alice", reason="confirmed")
    assert next(a for a in resumed.actions if a.id == isolate.id).status == "executed"
    entries = ledger(settings, paused.case_id)
    assert [p["action_id"] for p in kinds(entries, "approval_decided")] == [isolate.id]
    assert len(kinds(entries, "action_executed")) == len(
        {p["idempotency_key"] for p in kinds(entries, "action_executed")}
    )
    with Store.open(settings) as store:
        assert store.verify([paused.case_id]).ok
