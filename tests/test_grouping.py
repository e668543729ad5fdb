"""Alert storms: alerts of one incident join one case, cost no model call unless they add something, and never
hide an attack. Through the Python API, the CLI and HTTP intake with workers, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import ScriptedOpenAI, reply, tool_call_reply
from fastapi.testclient import TestClient
from soctriage.service.api.app import create_app
from soctriage.service.cli_service import BackgroundWorker
from soctriage.service.config import Settings
from soctriage.service.domain import FINAL_CASE_STATUSES, Alert, Severity, SeverityId
from soctriage.service.store import Joined, Store
from soctriage.tools.grouping import GroupingPolicy
from soctriage.tools.policy import DEFAULT_POLICY, load_policy
from test_cli import run
from test_graph import TRIAGE, llm_settings, sample, triager, verdict_answer


@pytest.fixture(autouse=True)
def shipped_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped policy, grouping on (the rest of the suite runs with it off)."""
    monkeypatch.setenv("SOCTRIAGE_POLICY_PATH", str(DEFAULT_POLICY))


def variant(alert: Alert, number: int, **changes: Any) -> Alert:
    """Another alert of the same kind: its own vendor id (so not a re-delivery), with `changes`."""
    return alert.model_copy(update={"id": f"{alert.id}-{number}", **changes})


def entries_of(settings: Settings, case_id: str, kind: str) -> list[Any]:
    with Store.open(settings) as store:
        return store.entries(case_id, kind=kind)  # type: ignore[arg-type]


def grouped_notes(settings: Settings, case_id: str) -> list[dict[str, Any]]:
    notes = entries_of(settings, case_id, "note")
    return [n.payload for n in notes if n.payload.get("event") == "grouped_alert"]


async def test_a_repeat_of_the_incident_joins_its_case_without_a_model_call(home: Path) -> None:
    alert = sample("defender-encoded-powershell.json")
    host = alert.device.hostname
    script = [
        reply(TRIAGE),
        tool_call_reply(("asset_context", {"hostname": host})),
        reply("enough evidence"),
        reply(verdict_answer(evidence=[1, 3])),
        tool_call_reply(("isolate_host", {"hostname": host}), content="contain the host"),
    ]
    settings = llm_settings(home)
    # The fake fails the test on a sixth call: the repeats must be scored without the model.
    with ScriptedOpenAI(script) as fake:
        async with triager(settings, fake) as t:
            first = await t.triage(alert)
            repeats = [await t.triage(variant(alert, n)) for n in (1, 2)]
    assert {r.case_id for r in repeats} == {first.case_id}
    assert [r.grouped for r in repeats] == [True, True] and not first.grouped
    assert [r.alert_id for r in repeats] == [f"{alert.id}-1", f"{alert.id}-2"]
    assert all(r.disposition == "true_positive" for r in repeats)
    with Store.open(settings) as store:
        case = store.get_case(first.case_id)
        assert case is not None and len(case.alert_ids) == 3
        assert store.verify().ok
    received = entries_of(settings, first.case_id, "alert_received")
    assert [e.payload["id"] for e in received] == [alert.id, f"{alert.id}-1", f"{alert.id}-2"]
    rules = {key["rule"] for key in received[1].payload["grouping"]}
    assert "detection_host" in rules
    assert {"rule": "detection_host", "detection": alert.detection, "host": host.lower()} in received[
        1
    ].payload["grouping"]
    assert [n["adds"] for n in grouped_notes(settings, first.case_id)] == [{}, {}]


async def test_new_evidence_triages_again_and_never_weakens_the_verdict(home: Path) -> None:
    alert = sample("defender-encoded-powershell.json")
    host = alert.device.hostname
    first_run = [
        reply(TRIAGE),
        tool_call_reply(("asset_context", {"hostname": host})),
        reply("enough evidence"),
        reply(verdict_answer(evidence=[1, 3])),
        reply("no action"),
    ]
    # The same detection for the same account on another host: the model calls it benign this time.
    again = [
        reply(TRIAGE),
        reply("enough evidence"),  # the builtin's baseline lookups decode the command: a second round
        reply("enough evidence"),
        reply(verdict_answer("false_positive", evidence=[1], confidence=0.99)),
        reply("no action"),
    ]
    other = variant(alert, 1, device=alert.device.model_copy(update={"hostname": "WS-OTHER-9"}))
    settings = llm_settings(home)
    with ScriptedOpenAI(first_run + again) as fake:
        async with triager(settings, fake) as t:
            first = await t.triage(alert)
            joined = await t.triage(other)
    assert joined.case_id == first.case_id and joined.grouped
    assert joined.disposition == "true_positive" and joined.status != "closed"
    [note] = grouped_notes(settings, first.case_id)
    assert note["adds"]["new_host"] == ["WS-OTHER-9"] and note["outcome"] == "retriage"
    verdicts = entries_of(settings, first.case_id, "verdict")
    assert verdicts[-1].payload["rerun_disposition"] == "false_positive"
    assert verdicts[-1].payload["disposition"] == "true_positive"


async def test_a_benign_closed_case_reopens_and_escalates_on_a_malicious_looking_alert(home: Path) -> None:
    alert = sample("crowdstrike-test-detection.json")
    settings = Settings(home=home)
    louder = variant(alert, 1, severity=Severity(id=SeverityId.CRITICAL, label="Critical"))
    async with triager(settings) as t:
        first = await t.triage(alert)
        assert first.status == "closed"
        joined = await t.triage(louder)
    assert joined.case_id == first.case_id and joined.status == "escalated"
    [note] = grouped_notes(settings, first.case_id)
    assert "higher_severity" in note["adds"] and note["escalation"].startswith("re-opened")


async def test_another_command_under_a_benign_closed_detection_is_not_scored_as_a_repeat(home: Path) -> None:
    alert = sample("crowdstrike-test-detection.json")
    assert alert.process is not None
    settings = Settings(home=home)
    encoded = "powershell.exe -nop -w hidden -enc " + "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAKQA" * 2
    # Its own command line: the vendor's test-detection verdict (which needs the test command) no longer holds.
    changed = {"process": alert.process.model_copy(update={"cmdline": encoded}), "vendor_verdict": None}
    attack = variant(alert, 1, **changed)
    async with triager(settings) as t:
        first = await t.triage(alert)
        assert first.status == "closed"
        repeat = await t.triage(variant(alert, 2))
        joined = await t.triage(attack)
    assert repeat.case_id == first.case_id and repeat.status == "closed"
    assert joined.case_id == first.case_id and joined.status != "closed", joined
    again, new = grouped_notes(settings, first.case_id)
    assert again["adds"] == {}, "the same activity again is a repeat"
    assert "new_activity" in new["adds"] and new["outcome"] == "retriage"


async def test_grouping_never_crosses_tenants_and_the_window_bounds_an_incident(home: Path) -> None:
    alert = sample("sentinelone-vssadmin-shadow-delete.json")
    settings = Settings(home=home)
    window = load_policy().grouping.window_s
    later = variant(alert, 2, time=alert.time.replace(year=alert.time.year + 1))
    assert (later.time - alert.time).total_seconds() > window
    async with triager(settings) as t:
        acme = await t.triage(alert, tenant="acme")
        globex = await t.triage(variant(alert, 1), tenant="globex")
        next_year = await t.triage(later, tenant="acme")
    assert len({acme.case_id, globex.case_id, next_year.case_id}) == 3
    assert not globex.grouped and not next_year.grouped


def test_cli_triage_groups_a_storm_and_a_policy_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storm = tmp_path / "storm.jsonl"
    alert = sample("elastic-certutil-download.json")
    raw = json.loads(alert.raw)
    lines = []
    for n in range(3):
        lines.append(
            json.dumps(raw).replace(alert.source.vendor_alert_id or "", f"{alert.source.vendor_alert_id}-{n}")
        )
    lines.append(sample("wazuh-admin-sudo-benign.json").raw.replace("\n", " "))
    storm.write_text("\n".join(lines) + "\n")
    grouped = run(tmp_path / "on", "triage", "--json", "--concurrency", "4", str(storm))
    assert grouped.returncode == 0, grouped.stderr
    results = [json.loads(line) for line in grouped.stdout.splitlines()]
    assert len(results) == 4 and len({r["case_id"] for r in results}) == 2
    assert [r["grouped"] for r in results] == [False, True, True, False]
    assert run(tmp_path / "on", "ledger", "verify", "--all").returncode == 0
    shown = json.loads(run(tmp_path / "on", "cases", "show", results[0]["case_id"], "--json").stdout)
    assert len(shown["case"]["alert_ids"]) == 3
    report = run(tmp_path / "on", "report", "evidence", "--format", "json")
    assert report.returncode == 0, report.stderr
    volume = json.loads(report.stdout)["volume"]
    assert (volume["alerts"], volume["cases"]) == (4, 2)

    policy = load_policy()
    off = tmp_path / "policy.json"
    off.write_text(policy.model_copy(update={"grouping": GroupingPolicy(enabled=False)}).model_dump_json())
    monkeypatch.setenv("SOCTRIAGE_POLICY_PATH", str(off))
    separate = run(tmp_path / "off", "triage", "--json", str(storm))
    assert len({json.loads(line)["case_id"] for line in separate.stdout.splitlines()}) == 4


def test_http_intake_and_workers_group_a_storm(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", worker_concurrency=4, job_lease_s=5)
    alert = sample("crowdstrike-lsass-dump.json")
    vendor_id = alert.source.vendor_alert_id or ""
    body = "\n".join(
        json.dumps(json.loads(alert.raw)).replace(vendor_id, f"{vendor_id}-{n}") for n in range(5)
    )
    worker = BackgroundWorker(settings, settings.worker_concurrency)
    worker.start()
    try:
        with TestClient(create_app(settings, auth_enabled=False)) as client:
            accepted = client.post("/v1/alerts", content=body.encode()).json()["accepted"]
            assert len({a["case_id"] for a in accepted}) == 1
            assert [a["grouped"] for a in accepted] == [False, True, True, True, True]
            case_id = accepted[0]["case_id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if len(grouped_notes(settings, case_id)) == 4:
                    break
                time.sleep(0.2)
            case = client.get(f"/v1/cases/{case_id}").json()["case"]
    finally:
        worker.stop()
    assert len(case["alert_ids"]) == 5 and case["status"] in FINAL_CASE_STATUSES | {"awaiting_approval"}
    assert len(grouped_notes(settings, case_id)) == 4


def race(settings: Settings, alerts: list[Alert]) -> list[Any]:
    """Each alert opened by its own store (its own connection) at the same moment."""
    stores = [Store.open(settings) for _ in alerts]
    grouping = load_policy().grouping.grouping()
    start = threading.Barrier(len(alerts))
    outcomes: list[Any] = [None] * len(alerts)

    def open_one(index: int) -> None:
        start.wait()
        outcomes[index] = stores[index].open_or_join(alerts[index], "acme", grouping)

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(len(alerts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    return outcomes


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_racing_writers_open_one_case_per_incident(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = {"database_url": request.getfixturevalue("pg_url")} if backend == "postgresql" else {}
    settings = Settings(home=tmp_path / "home", **url)
    alert = sample("crowdstrike-lsass-dump.json")
    Store.open(settings).close()
    outcomes = race(settings, [variant(alert, n) for n in range(4)])
    joined = [o for o in outcomes if isinstance(o, Joined)]
    assert len(joined) == 3 and len({o.case_id for o in joined}) == 1
    with Store.open(settings) as store:
        case = store.get_case(joined[0].case_id)
        assert case is not None and len(case.alert_ids) == 4
        assert store.verify().ok
