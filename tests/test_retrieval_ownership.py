"""The retrieval index belongs to whoever builds the Triager (or `serve`): opened on first use, never shared
with another Triager unless handed down, and closed with the Triager that opened it."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from soctriage.agents.run import Triager
from soctriage.service.api.app import create_app
from soctriage.service.config import Settings
from soctriage.service.domain import Alert
from soctriage.service.ingest import normalize_bytes
from soctriage.tools.retrieval import LazyIndex


def finding(uid: str, host: str) -> Alert:
    """An OCSF detection of a printer driver update on `host`: nothing to contain, so the case closes (or is
    escalated) without waiting for an approval, and is indexed."""
    record: dict[str, Any] = {
        "class_uid": 2004,
        "time": 1767225600000,
        "severity_id": 2,
        "metadata": {"product": {"name": "Probe EDR", "vendor_name": "Probe"}},
        "finding_info": {
            "uid": uid,
            "title": "Printer driver package staged",
            "desc": "The print spooler staged a signed driver package from the vendor's update service",
        },
        "device": {"hostname": host},
        "actor": {
            "user": {"name": "k.lind"},
            "process": {"name": "spoolsv.exe", "cmd_line": "C:\\Windows\\System32\\spoolsv.exe"},
        },
    }
    [alert] = normalize_bytes(json.dumps(record).encode(), "probe", "ocsf")
    assert isinstance(alert, Alert)
    return alert


def similar(triager: Triager, case_id: str) -> list[str]:
    [result] = [
        e
        for e in triager.store.entries(case_id)
        if e.kind == "tool_result" and e.payload["tool"] == "similar_cases"
    ]
    return [c["case_id"] for c in result.payload["output"]["cases"]]


def indexer_threads() -> int:
    return sum(t.name == "soctriage-indexer" and t.is_alive() for t in threading.enumerate())


async def test_a_new_home_at_the_same_path_gets_a_new_index_and_none_outlives_its_triager(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "home", embedder="hashing")
    before = indexer_threads()
    async with Triager(settings, group=False) as triager:
        first = await triager.triage(finding("probe-1", "lab-ws-01"))
        triager.deps.connectors.retrieval.flush()
        again = await triager.triage(finding("probe-2", "lab-ws-02"))
        assert similar(triager, again.case_id) == [first.case_id]
    assert indexer_threads() == before

    # The same settings again, over a home started afresh: nothing of the first home is found or written to.
    shutil.rmtree(tmp_path / "home")
    async with Triager(settings, group=False) as triager:
        fresh = await triager.triage(finding("probe-3", "lab-ws-03"))
        assert similar(triager, fresh.case_id) == []
        triager.deps.connectors.retrieval.flush()
        later = await triager.triage(finding("probe-4", "lab-ws-04"))
        assert similar(triager, later.case_id) == [fresh.case_id]
    assert indexer_threads() == before


async def test_two_triagers_at_once_keep_their_own_index(tmp_path: Path) -> None:
    a = Settings(home=tmp_path / "a", embedder="hashing")
    b = Settings(home=tmp_path / "b", embedder="hashing")
    async with Triager(a, group=False) as in_a, Triager(b, group=False) as in_b:
        assert in_a.deps.connectors.retrieval is not in_b.deps.connectors.retrieval
        seen = await in_a.triage(finding("probe-a", "lab-ws-11"))
        in_a.deps.connectors.retrieval.flush()
        other = await in_b.triage(finding("probe-b", "lab-ws-12"))
        assert similar(in_b, other.case_id) == []
        mine = await in_a.triage(finding("probe-c", "lab-ws-13"))
        assert similar(in_a, mine.case_id) == [seen.case_id]


async def test_the_index_opens_on_first_use_and_a_handed_down_one_stays_with_its_owner(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "home", embedder="hashing")
    before = indexer_threads()
    async with Triager(settings):
        pass
    assert not (tmp_path / "home" / "chroma").exists()  # nothing closed, nothing looked up: never opened

    shared = LazyIndex(settings)
    async with Triager(settings, group=False, index=shared) as triager:
        assert triager.deps.connectors.retrieval is shared
        first = await triager.triage(finding("probe-5", "lab-ws-05"))
    # Left open for its owner: the next triager handed it finds the case with the same index.
    opened = shared.get()
    async with Triager(settings, group=False, index=shared) as triager:
        second = await triager.triage(finding("probe-6", "lab-ws-06"))
        assert similar(triager, second.case_id) == [first.case_id]
    assert shared.get() is opened
    assert indexer_threads() == before + 1
    shared.close()
    assert indexer_threads() == before


def test_an_app_handed_the_process_index_embeds_with_it_and_leaves_it_open(tmp_path: Path) -> None:
    # The index is the one handed down, not one the app would open from its own settings' embedder.
    shared = LazyIndex(Settings(home=tmp_path / "home", embedder="hashing"))
    opened = shared.get()
    app = create_app(Settings(home=tmp_path / "home", embedder="minilm"), auth_enabled=False, index=shared)
    with TestClient(app) as client:
        answer = client.post("/v1/embeddings", json={"input": ["rundll32 comsvcs MiniDump"]})
        assert answer.status_code == 200 and answer.json()["model"] == "hashing-384"
    # The app's shutdown flushed it for its owner (serve, whose workers share it) and did not close it.
    assert shared.get() is opened
    shared.close()
