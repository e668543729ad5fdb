"""A triage killed mid-way (SIGKILL, a real process) resumes from its checkpoint after a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from fakes import FAKE_API_KEY, ScriptedOpenAI, reply, tool_call_reply
from service_support import serving
from soctriage.service.config import Settings
from soctriage.service.store import Store

SAMPLE = Path(str(resources.files("soctriage.service").joinpath("samples/defender-encoded-powershell.json")))
TRIAGE = {
    "category": "execution",
    "initial_severity": 4,
    "hypotheses": ["download cradle"],
    "enrichments": ["process_lineage"],
    "rationale": "encoded PowerShell from Word",
}
VERDICT = {
    "disposition": "true_positive",
    "severity_id": 4,
    "confidence": 0.9,
    "techniques": ["T1059.001"],
    "summary": "download cradle",
    "rationale": "lineage",
    "evidence": [1],
    "recommended_actions": ["create_ticket"],
}


def triage_process(home: Path, base_url: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "SOCTRIAGE_HOME": str(home),
        "SOCTRIAGE_MODEL": "openai:fake-model",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": FAKE_API_KEY,
        "SOCTRIAGE_LLM_MAX_ATTEMPTS": "1",
    }
    env.pop("SOCTRIAGE_DATABASE_URL", None)
    cmd = [sys.executable, "-m", "soctriage.service.cli", "triage", "--json", str(SAMPLE)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_during_enrichment_then_rerun_resumes_the_same_case(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = ScriptedOpenAI([reply(TRIAGE), tool_call_reply(("process_lineage", {}), delay_s=60)])
    with serving(first) as model_url:
        proc = triage_process(home, f"{model_url}/v1")
        deadline = time.monotonic() + 60
        while len(first.requests) < 2 and time.monotonic() < deadline:  # stuck inside enrichment now
            time.sleep(0.05)
        assert len(first.requests) == 2, proc.stderr.read() if proc.poll() is not None else "no enrich call"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    with Store.open(Settings(home=home)) as store:
        [case] = store.list_cases()
        assert case.status == "triaging"
        triaged_before = [e for e in store.entries(case.id) if e.kind == "reasoning"]
    assert len(triaged_before) == 1

    # The restart must not redo triage (already checkpointed): it starts at enrichment.
    second = ScriptedOpenAI(
        [
            tool_call_reply(("process_lineage", {})),
            reply("enough"),
            reply(VERDICT),
            tool_call_reply(("create_ticket", {"title": "t", "severity": "high", "summary": "s"})),
        ]
    )
    with second, serving(second) as model_url:
        proc = triage_process(home, f"{model_url}/v1")
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["case_id"] == case.id and result["duplicate"] is True
    assert result["status"] == "escalated"  # a true positive with only a ticket goes to an analyst
    with Store.open(Settings(home=home)) as store:
        entries = store.entries(case.id)
        assert store.verify([case.id]).ok
        assert len(store.list_cases()) == 1
    assert len([e for e in entries if e.kind == "reasoning"]) == 1
    assert len([e for e in entries if e.kind == "action_executed"]) == 1
