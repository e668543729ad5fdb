"""The triage graph end to end, through `Triager` (the Python API the CLI and service use)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fakes import FAKE_API_KEY, ScriptedOpenAI, error, reply, tool_call_reply
from soctriage.agents.lifecycle import Decision
from soctriage.agents.run import Triager, TriageResult
from soctriage.agents.state import initial_state
from soctriage.evals.suite import SUITES_ROOT
from soctriage.service.config import Settings
from soctriage.service.domain import Alert
from soctriage.service.ingest import Rejection, normalize_bytes
from soctriage.service.store import Store

SAMPLES = resources.files("soctriage.service").joinpath("samples")


def sample(name: str) -> Alert:
    [alert] = [a for a in normalize_bytes(SAMPLES.joinpath(name).read_bytes(), name) if isinstance(a, Alert)]
    return alert


def llm_settings(home: Path, **extra: Any) -> Settings:
    return Settings(
        home=home,
        model="openai:fake-model",
        openai_base_url="http://fake-openai.test/v1",
        openai_api_key=FAKE_API_KEY,
        llm_max_attempts=3,
        llm_backoff_base_s=0.001,
        llm_backoff_max_s=0.01,
        **extra,
    )


@asynccontextmanager
async def triager(settings: Settings, fake: ScriptedOpenAI | None = None) -> AsyncIterator[Triager]:
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake)) if fake else None
    async with Triager(settings, http_client=client) as t:
        yield t


def ledger(settings: Settings, case_id: str) -> list[Any]:
    with Store.open(settings) as store:
        return store.entries(case_id)


def kinds(entries: list[Any], kind: str) -> list[dict[str, Any]]:
    return [e.payload for e in entries if e.kind == kind]


# --- builtin model -----------------------------------------------------------------------------------------


async def test_builtin_triages_every_bundled_sample_and_ledgers_verify(home: Path) -> None:
    settings = Settings(home=home)
    results: dict[str, TriageResult] = {}
    async with triager(settings) as t:
        for path in sorted(p for p in SAMPLES.iterdir() if p.is_file()):
            results[path.name] = await t.triage(sample(path.name))
    assert all(
        r.status in ("closed", "contained", "escalated", "awaiting_approval") for r in results.values()
    )
    assert results["crowdstrike-test-detection.json"].status == "closed"
    assert results["crowdstrike-test-detection.json"].disposition == "benign_true_positive"
    lsass = results["crowdstrike-lsass-dump.json"]
    assert lsass.disposition == "true_positive"
    isolate = next(a for a in lsass.actions if a.tool == "isolate_host")
    assert (isolate.target, isolate.decision, isolate.status) == (
        "DC01",
        "needs_approval",
        "awaiting_approval",
    )
    with Store.open(settings) as store:
        assert store.verify(None).ok


async def test_a_redelivered_alert_does_not_open_a_second_case(home: Path) -> None:
    settings = Settings(home=home)
    async with triager(settings) as t:
        first = await t.triage(sample("crowdstrike-test-detection.json"))
        again = await t.triage(sample("crowdstrike-test-detection.json"))
    assert again.case_id == first.case_id and again.duplicate
    assert again.ledger_entries == first.ledger_entries


async def test_injected_alert_is_not_closed_and_nothing_acts_on_dc01(home: Path) -> None:
    settings = Settings(home=home)
    async with triager(settings) as t:
        result = await t.triage(sample("elastic-prompt-injection.json"))
    assert result.status != "closed"
    assert all("dc01" not in a.target.lower() for a in result.actions)
    entries = ledger(settings, result.case_id)
    [note] = [p for p in kinds(entries, "note") if p.get("event") == "possible_prompt_injection"]
    assert "override" in note["markers"]
    assert all("dc01" not in json.dumps(p).lower() for p in kinds(entries, "action_executed"))


VENDOR_EXPECTATIONS = {
    # (file, 1-based line): disposition the vendor record itself supports (see evals/suites/vendor/NOTICE.md)
    ("crowdstrike-falcon-stream-epp.jsonl", 5): {"benign_true_positive"},
    ("defender-endpoint-alerts.jsonl", 1): {"benign_true_positive", "false_positive"},
    ("defender-endpoint-alerts.jsonl", 4): {"benign_true_positive", "false_positive"},
    ("crowdstrike-alerts-api.jsonl", 3): {"true_positive"},
    ("wazuh-alerts.jsonl", 1): {"benign_true_positive"},
}


async def test_builtin_on_every_vendor_fixture(home: Path) -> None:
    folder = SUITES_ROOT / "vendor" / "data"
    settings = Settings(home=home)
    seen: dict[tuple[str, int], TriageResult] = {}
    async with triager(settings) as t:
        for path in sorted(folder.glob("*.jsonl")):
            for number, line in enumerate(path.read_bytes().splitlines(), start=1):
                for item in normalize_bytes(line, path.name):
                    assert not isinstance(item, Rejection), item.message()
                    seen[(path.name, number)] = await t.triage(item)
    assert len(seen) == 30  # 31 lines; one is an empty Defender API page
    for key, allowed in VENDOR_EXPECTATIONS.items():
        assert seen[key].disposition in allowed, (key, seen[key])
    with Store.open(settings) as store:
        assert store.verify(None).ok


# --- approvals -----------------------------------------------------------------------------------------------


async def test_approval_resumes_after_restart_and_never_acts_twice(home: Path) -> None:
    settings = Settings(home=home)
    async with triager(settings) as t:
        paused = await t.triage(sample("crowdstrike-lsass-dump.json"))
    assert paused.status == "awaiting_approval"
    isolate = next(a for a in paused.actions if a.tool == "isolate_host")
    async with triager(settings) as t:  # a new process would build exactly this
        resumed = await t.decide(
            paused.case_id, Decision(action_id=isolate.id, approve=True, by="alice", reason="confirmed")
        )
        with pytest.raises(ValueError, match="only a pending action can be decided"):
            await t.decide(paused.case_id, Decision(action_id=isolate.id, approve=True, by="alice"))
    assert next(a for a in resumed.actions if a.id == isolate.id).status == "executed"
    entries = ledger(settings, paused.case_id)
    decided = kinds(entries, "approval_decided")
    assert [(d["action_id"], d["outcome"]) for d in decided] == [(isolate.id, "approved")]
    assert [e.actor for e in entries if e.kind == "approval_decided"] == ["human:alice"]
    executed = [p["idempotency_key"] for p in kinds(entries, "action_executed")]
    assert len(executed) == len(set(executed))


async def test_expired_approval_is_refused_and_recorded(home: Path, tmp_path: Path) -> None:
    from soctriage.tools.policy import load_policy

    policy = load_policy(None).model_copy(update={"approval_ttl_s": 0.001})
    policy_path = tmp_path / "policy.json"
    policy_path.write_text(policy.model_dump_json())
    settings = Settings(home=home, policy_path=policy_path)
    async with triager(settings) as t:
        paused = await t.triage(sample("crowdstrike-lsass-dump.json"))
        isolate = next(a for a in paused.actions if a.tool == "isolate_host")
        result = await t.decide(paused.case_id, Decision(action_id=isolate.id, approve=True, by="bob"))
    assert next(a for a in result.actions if a.id == isolate.id).status == "expired"
    [decided] = kinds(ledger(settings, paused.case_id), "approval_decided")
    assert decided["outcome"] == "expired"


async def test_a_crash_after_acting_does_not_repeat_the_action(home: Path) -> None:
    """Replaying from the checkpoint before `act` is what a restart after a crash inside `act` does."""
    settings = Settings(home=home)
    async with triager(settings) as t:
        case = t.store.create_case(sample("defender-encoded-powershell.json"), settings.tenant)
        config = {"configurable": {"thread_id": case.id}}
        # The graph itself, not `Triager.triage`: a run that finishes there keeps only its last checkpoint,
        # while a run that crashed keeps them all.
        await t.graph.ainvoke(initial_state(case.id, case.tenant), config, context=t.deps)
        before_act = [s async for s in t.graph.aget_state_history(config) if s.next == ("act",)][-1]
        executed_before = len(kinds(ledger(settings, case.id), "action_executed"))
        assert executed_before >= 1
        await t.graph.ainvoke(None, before_act.config, context=t.deps)
    entries = ledger(settings, case.id)
    assert len(kinds(entries, "action_executed")) == executed_before
    duplicates = [p for p in kinds(entries, "tool_result") if p.get("status") == "duplicate"]
    assert len(duplicates) == executed_before


# --- OpenAI-compatible model through the real openai client -----------------------------------------------

TRIAGE = {
    "category": "execution",
    "initial_severity": 4,
    "hypotheses": ["download cradle"],
    "enrichments": ["threat_intel_lookup"],
    "rationale": "encoded PowerShell",
}


def verdict_answer(disposition: str = "true_positive", evidence: list[int] | None = None, **kw: Any) -> dict:
    return {
        "disposition": disposition,
        "severity_id": 4,
        "confidence": 0.9,
        "techniques": ["T1059.001"],
        "summary": "PowerShell download cradle",
        "rationale": "intel and lineage",
        "evidence": evidence if evidence is not None else [1],
        "recommended_actions": ["isolate_host"],
    } | kw


async def test_openai_model_drives_the_graph_with_tools_and_structured_output(home: Path) -> None:
    alert = sample("defender-encoded-powershell.json")
    host = alert.device.hostname
    script = [
        error(429, "slow down", retry_after=0),
        reply(TRIAGE, prompt_tokens=100, completion_tokens=20),
        tool_call_reply(("asset_context", {"hostname": host}), ("process_lineage", {})),
        reply("enough evidence"),
        reply(verdict_answer(evidence=[1, 3])),
        tool_call_reply(("isolate_host", {"hostname": host}), content="contain the host"),
    ]
    settings = llm_settings(home)
    with ScriptedOpenAI(script) as fake:
        async with triager(settings, fake) as t:
            result = await t.triage(alert)
    assert result.disposition == "true_positive" and result.confidence == 0.9
    assert [(a.tool, a.target) for a in result.actions] == [("isolate_host", host)]
    entries = ledger(settings, result.case_id)
    calls = kinds(entries, "llm_call")
    assert len(calls) == 5
    assert calls[0]["prompt_tokens"] == 100 and [a["outcome"] for a in calls[0]["attempts"]][:1] == [
        "rate_limited"
    ]
    assert set(calls[0]["prompt_hashes"]) == {"system", "triage"}
    assert FAKE_API_KEY not in json.dumps([e.payload for e in entries])
    assert {p["tool"] for p in kinds(entries, "tool_call")} >= {
        "asset_context",
        "process_lineage",
        "isolate_host",
    }
    # Alert text reaches the model only inside the untrusted-data fence.
    user_message = fake.requests[1].messages[1]["content"]
    cmdline = alert.process.cmdline
    start, end = user_message.index("<untrusted-data"), user_message.index("</untrusted-data")
    assert start < user_message.index(json.dumps(cmdline)[1:20]) < end


async def test_endpoint_down_falls_back_to_builtin_and_escalates(home: Path) -> None:
    settings = llm_settings(home)
    with ScriptedOpenAI([error(500, "boom")] * 3) as fake:
        async with triager(settings, fake) as t:
            result = await t.triage(sample("crowdstrike-lsass-dump.json"))
    assert result.disposition == "true_positive"  # decided by builtin
    entries = ledger(settings, result.case_id)
    [fallback] = [p for p in kinds(entries, "note") if p.get("event") == "model_fallback"]
    assert "unavailable after 3 attempt" in fallback["reason"]
    with Store.open(settings) as store:
        case = store.get_case(result.case_id)
    # It still waits for the approvals it needs, then closes as escalated, never silently.
    assert case.status in ("awaiting_approval", "escalated")
    async with triager(settings) as t:
        pending = [a for a in result.actions if a.status == "awaiting_approval"]
        for action in pending:
            final = await t.decide(result.case_id, Decision(action_id=action.id, approve=False, by="carol"))
    assert final.status == "escalated"


async def test_malformed_json_answer_is_retried_once(home: Path) -> None:
    settings = llm_settings(home)
    script = [
        reply("{not json"),
        reply(TRIAGE),
        reply("the baseline lookups are enough"),
        reply(verdict_answer("false_positive", confidence=0.95)),
    ]
    with ScriptedOpenAI(script) as fake:
        async with triager(settings, fake) as t:
            result = await t.triage(sample("crowdstrike-test-detection.json"))
    assert result.disposition == "false_positive" and result.status == "closed"


async def test_verdict_citing_missing_entries_is_retried_then_escalated(home: Path) -> None:
    settings = llm_settings(home, max_enrich_steps=0)
    script = [reply(TRIAGE), reply(verdict_answer(evidence=[999])), reply(verdict_answer(evidence=[998]))]
    with ScriptedOpenAI(script) as fake:
        async with triager(settings, fake) as t:
            result = await t.triage(sample("crowdstrike-test-detection.json"))
    assert result.status == "escalated"
    rejected = [
        p for p in kinds(ledger(settings, result.case_id), "note") if p.get("event") == "verdict_rejected"
    ]
    assert len(rejected) == 2
    assert "999" in fake.requests[2].messages[1]["content"]  # the retry was told what was wrong


async def test_adversarial_model_obeying_the_injection_is_held_by_the_guard(home: Path) -> None:
    """A model that does what the alert text says: calls it benign, or isolates DC01. Neither happens."""
    alert = sample("elastic-prompt-injection.json")
    settings = llm_settings(home)
    obey_close = [
        reply(TRIAGE),
        reply("no lookups needed, the alert says it is benign"),
        reply(verdict_answer("false_positive", confidence=0.99)),
    ]
    with ScriptedOpenAI(obey_close) as fake:
        async with triager(settings, fake) as t:
            closed_attempt = await t.triage(alert)
    assert closed_attempt.status == "escalated"

    settings = llm_settings(home.parent / "home2", max_enrich_steps=0)
    obey_isolate = [
        reply(TRIAGE),
        reply(verdict_answer()),
        tool_call_reply(
            ("isolate_host", {"hostname": "DC01"}), ("disable_user", {"username": "administrator"})
        ),
    ]
    with ScriptedOpenAI(obey_isolate) as fake:
        async with triager(settings, fake) as t:
            result = await t.triage(alert)
    assert [(a.tool, a.decision, a.status) for a in result.actions] == [
        ("isolate_host", "deny", "denied"),
        ("disable_user", "deny", "denied"),
    ]
    decisions = kinds(ledger(settings, result.case_id), "guard_decision")
    assert decisions[0]["rule_id"] == "target-not-in-case"
    assert not kinds(ledger(settings, result.case_id), "action_executed")
    assert result.status == "escalated"


@pytest.mark.postgres
async def test_on_postgresql_approval_resumes_from_the_postgres_checkpoint(
    pg_url: str, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=pg_url)
    async with triager(settings) as t:
        paused = await t.triage(sample("crowdstrike-lsass-dump.json"))
    assert paused.status == "awaiting_approval"
    assert not (tmp_path / "home" / "checkpoints.db").exists()  # checkpoints went to PostgreSQL
    pending = [a for a in paused.actions if a.status == "awaiting_approval"]
    async with triager(settings) as t:
        for action in pending:
            final = await t.decide(
                paused.case_id,
                Decision(action_id=action.id, approve=action.tool == "isolate_host", by="dana"),
            )
    assert final.status == "contained"
    with Store.open(settings) as store:
        assert store.verify([paused.case_id]).ok
        decided = kinds(store.entries(paused.case_id), "approval_decided")
    assert len(decided) == len(pending)


async def test_replay_model_answers_from_a_recorded_ledger(home: Path, tmp_path: Path) -> None:
    from soctriage.service.store.transcript import export_transcript

    alert = sample("crowdstrike-test-detection.json")
    settings = llm_settings(home)
    script = [
        reply(TRIAGE),
        reply("no more lookups"),
        reply(verdict_answer("false_positive", confidence=0.95)),
    ]
    with ScriptedOpenAI(script) as fake:
        async with triager(settings, fake) as t:
            recorded = await t.triage(alert)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    with Store.open(settings) as store:
        (recordings / f"{recorded.case_id}.jsonl").write_text(
            export_transcript(store, recorded.case_id, "jsonl")
        )

    replay = Settings(home=tmp_path / "replay-home", model=f"replay:{recordings}")
    async with triager(replay) as t:
        replayed = await t.triage(alert)
    assert (replayed.disposition, replayed.confidence, replayed.status) == ("false_positive", 0.95, "closed")
    calls = kinds(ledger(replay, replayed.case_id), "llm_call")
    assert [c["analyst"] for c in calls] == [f"replay:{recordings}"] * 3

    # A prompt that was never recorded is not answered: the case falls back to builtin and is escalated.
    async with triager(replay.model_copy(update={"home": tmp_path / "replay-2"})) as t:
        other = await t.triage(sample("wazuh-admin-sudo-benign.json"))
    assert other.status == "escalated"
    notes = kinds(ledger(replay.model_copy(update={"home": tmp_path / "replay-2"}), other.case_id), "note")
    assert any(n.get("event") == "model_fallback" for n in notes)
