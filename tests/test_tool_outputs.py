"""Tool outputs past the runner: each says in one line what its tool found (the assistant's timeline, the
evidence a model is shown), and the builtin decides from the typed outputs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
from fakes import ScriptedOpenAI, reply, tool_call_reply
from soctriage.agents.run import Triager
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, Network, ParentProcess, Process
from soctriage.service.ledger_events import ToolResultRecorded
from test_graph import TRIAGE, llm_settings, verdict_answer
from tools_support import make_alert

HOST, USER, C2 = "OPS-SQL-11", "k.osei", "198.51.100.144"


def _environment(tmp_path: Path) -> dict[str, Path | list[Path]]:
    """An organisation of our own: a database server, a privileged admin and a beacon endpoint intel knows."""
    intel = tmp_path / "intel.jsonl"
    intel.write_text(
        json.dumps(
            {
                "indicator": C2,
                "type": "ip",
                "verdict": "malicious",
                "score": 88,
                "source": "partner-isac",
                "description": "beacon endpoint of a loader",
            }
        )
        + "\n"
    )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"hosts:\n  - hostname: {HOST}\n    ip: 10.60.1.11\n    criticality: high\n    role: server\n"
        f"    owner: data-platform\nusers:\n  - name: {USER}\n    privileged: true\n"
    )
    return {"intel_paths": [intel], "inventory_path": inventory}


def _beacon() -> Alert:
    return make_alert(
        hostname=HOST,
        username=USER,
        id="tests-beacon-ops-sql-11",
        title="Outbound connection from a proxy-execution binary on a database server",
        process=Process(
            name="rundll32.exe",
            pid=5120,
            path="C:\\Windows\\System32\\rundll32.exe",
            cmdline="rundll32.exe C:\\ProgramData\\svc\\upd.dll,Start",
            parent=ParentProcess(
                name="sqlservr.exe", pid=2210, path="C:\\Program Files\\Microsoft SQL Server\\sqlservr.exe"
            ),
        ),
        file=None,
        network=Network(src_ip="10.60.1.11", dst_ip=C2, dst_port=8443),
        observables=(),
    )


async def test_the_timeline_says_what_each_lookup_found_and_the_builtin_reads_it(
    home: Path, tmp_path: Path
) -> None:
    async with Triager(Settings(home=home, **_environment(tmp_path))) as triager:
        case = await triager.triage(_beacon())
        timeline = await triager.assistant().ask(case.case_id, "Walk me through the timeline", by="alice")
        verdict = next(e for e in triager.store.entries(case.case_id) if e.kind == "verdict").payload
    for line in (
        f"asset_context: {HOST}: server, criticality high, owner data-platform",
        f"identity_context: {USER}: privileged",
        "process_lineage: sqlservr.exe > rundll32.exe; flags lolbin_in_chain",
        "lolbin_lookup: rundll32.exe: a LOLBin (",
        f"threat_intel_lookup: {C2} (ip) malicious, score 88; partner-isac: beacon endpoint of a loader",
        "org_context: no organisation context is configured",
        "suppression_rules_lookup: no analyst rule matches",
    ):
        assert line in timeline.answer, line
    # The builtin read the same outputs as typed models: each of them moved the verdict.
    assert case.disposition == "true_positive"
    for reason in (
        f"asset {HOST} is high (server)",
        f"user {USER} is privileged",
        f"threat intel: {C2} malicious",
    ):
        assert reason in verdict["rationale"], reason


async def test_a_model_is_shown_what_each_lookup_found(home: Path, tmp_path: Path) -> None:
    script = [
        reply(TRIAGE),
        tool_call_reply(("asset_context", {"hostname": HOST}), ("threat_intel_lookup", {"indicator": C2})),
        reply("enough evidence"),
        reply(verdict_answer(evidence=[1])),
        tool_call_reply(("isolate_host", {"hostname": HOST}), content="contain the host"),
    ]
    settings = llm_settings(home, **_environment(tmp_path))
    with ScriptedOpenAI(script) as fake:
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake))
        async with Triager(settings, http_client=client) as triager:
            await triager.triage(_beacon())
    shown = json.dumps(fake.requests[3].messages)
    for line in (f"{HOST}: server, criticality high", f"{C2} (ip) malicious, score 88"):
        assert json.dumps(line)[1:-1] in shown, line


async def test_a_result_this_build_cannot_read_is_shown_as_it_was_written(home: Path) -> None:
    async with Triager(Settings(home=home)) as triager:
        # A host-only alert: few enough entries for the whole timeline to be shown.
        bare = make_alert(
            id="tests-retired-tool", user=None, process=None, file=None, network=None, observables=()
        )
        case = await triager.triage(bare)
        retired = {"tool": "retired_lookup", "status": "ok", "output": {"answer": "kept as written"}}
        reshaped = {"tool": "asset_context", "status": "ok", "output": {"host": "renamed field"}}
        for payload in (retired, reshaped):
            triager.store.append(
                case.case_id, "enrichment_agent", "tool_result", ToolResultRecorded.model_validate(payload)
            )
        timeline = await triager.assistant().ask(case.case_id, "Show me the timeline", by="alice")
    assert 'retired_lookup: {"answer": "kept as written"}' in timeline.answer
    assert 'asset_context: {"host": "renamed field"}' in timeline.answer
