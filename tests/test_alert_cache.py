"""The per-process alert cache (`RecentAlerts`): bounded, and a run whose alert it dropped reads it again."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

from soctriage.agents.deps import RecentAlerts
from soctriage.agents.lifecycle import Decision
from soctriage.agents.run import Triager
from soctriage.service.config import Settings
from soctriage.service.domain import (
    Alert,
    Attack,
    Device,
    ParentProcess,
    Process,
    Severity,
    Source,
    User,
)
from soctriage.service.store import Store


def memory_dump(n: int, host: str) -> Alert:
    """rundll32 dumping LSASS through comsvcs.dll on `host`: the builtin asks a human before containing it."""
    cmdline = r"rundll32.exe C:\Windows\System32\comsvcs.dll, MiniDump 612 C:\ProgramData\dbg.bin full"
    return Alert(
        id=f"cache-test-{n}",
        source=Source(vendor="crowdstrike", product="falcon", format="crowdstrike", vendor_alert_id=f"c{n}"),
        time=datetime(2026, 5, 6, 7, 8, n, tzinfo=UTC),
        severity=Severity.of(5),
        title="LSASS memory read by rundll32",
        attacks=(Attack(tactic="Credential Access", tactic_id="TA0006", technique_id="T1003.001"),),
        device=Device(hostname=host),
        user=User(name="svc-report", domain="CORP"),
        process=Process(name="rundll32.exe", pid=612, cmdline=cmdline, parent=ParentProcess(name="cmd.exe")),
        raw=json.dumps({"id": f"c{n}", "host": host, "cmdline": cmdline}),
    )


def test_the_cache_keeps_the_latest_used_alerts_and_drops_the_oldest() -> None:
    cache = RecentAlerts(size=2)
    first, second, third = (memory_dump(n, "WS-1") for n in (1, 2, 3))
    cache.put(("case-a", 1), first)
    cache.put(("case-b", 1), second)
    assert cache.get(("case-a", 1)) == first  # used again: now the latest
    cache.put(("case-c", 1), third)

    assert cache.get(("case-b", 1)) is None
    assert cache.get(("case-a", 1)) == first
    assert cache.get(("case-c", 1)) == third


async def test_a_run_resumed_after_its_alert_left_the_cache_reads_it_from_the_store(home: Path) -> None:
    settings = Settings(home=home)
    async with Triager(settings) as triager:
        triager.deps = dataclasses.replace(triager.deps, alerts=RecentAlerts(size=1))
        paused = await triager.triage(memory_dump(1, "DC02"))
        assert paused.status == "awaiting_approval"
        other = await triager.triage(memory_dump(2, "FIN-WS-042"))
        assert other.case_id != paused.case_id
        assert triager.deps.alerts.get((paused.case_id, 1)) is None  # pushed out by the second run

        pending = [a for a in paused.actions if a.status == "awaiting_approval"]
        assert any(a.tool == "isolate_host" for a in pending)
        for action in pending:
            resumed = await triager.decide(
                paused.case_id, Decision(action_id=action.id, approve=True, by="alice")
            )

        # The nodes after the approval read the alert again, from the store, into the cache.
        assert triager.deps.alerts.get((paused.case_id, 1)) == memory_dump(1, "DC02")
    assert resumed.status not in ("awaiting_approval", "triaging")
    executed = {a.tool: a.target for a in resumed.actions if a.status == "executed"}
    assert executed["isolate_host"] == "DC02"
    with Store.open(settings) as store:
        entries = store.entries(paused.case_id)
        assert store.verify([paused.case_id]).ok
    isolated = [
        e.payload for e in entries if e.kind == "action_executed" and e.payload["tool"] == "isolate_host"
    ]
    assert len(isolated) == 1 and isolated[0]["args"]["hostname"] == "DC02"
