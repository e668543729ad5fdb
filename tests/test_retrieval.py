"""Retrieval: embedders, the per-tenant case index, the knowledge base, and `similar_cases` in the graph."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import numpy as np
import pytest
from soctriage.agents.run import Triager
from soctriage.service.config import Settings
from soctriage.tools.retrieval import RetrievalIndex, chroma_client
from soctriage.tools.retrieval_docs import CaseDocument, KnowledgeDoc
from soctriage.tools.retrieval_embed import (
    EmbeddingConfigError,
    HashingEmbedder,
    OpenAIEmbedder,
    embedder_choice,
    make_embedder,
)
from soctriage.tools.retrieval_tools import runbook_docs
from test_graph import sample

LSASS = "crowdstrike-lsass-dump.json"
SUDO = "wazuh-admin-sudo-benign.json"  # enriched, then escalated as inconclusive


def doc(
    case_id: str, tenant: str, text: str, disposition: str = "true_positive", **extra: object
) -> CaseDocument:
    fields = {
        "case_id": case_id,
        "tenant": tenant,
        "status": "closed",
        "disposition": disposition,
        "title": text[:40],
        "summary": f"{disposition}: {text[:40]}",
        "text": text,
        **extra,
    }
    return CaseDocument.model_validate(fields)


@pytest.fixture(params=["embedded", "server"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> RetrievalIndex:
    if request.param == "server":
        settings = Settings(home=tmp_path, chroma_url=request.getfixturevalue("chroma_server"))
        client = chroma_client(settings)
        for collection in client.list_collections():  # the module's server is shared between tests
            client.delete_collection(getattr(collection, "name", collection))
        return RetrievalIndex(client, HashingEmbedder())
    return RetrievalIndex(chroma_client(Settings(home=tmp_path)), HashingEmbedder())


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder()
    a, b = embedder.embed_documents(["rundll32 comsvcs MiniDump lsass", "rundll32 comsvcs MiniDump lsass"])
    assert np.allclose(a, b) and abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    assert embedder.embed_documents([]).shape == (0, 384)


def test_similar_cases_are_ranked_and_never_cross_tenants(index: RetrievalIndex) -> None:
    index.index_cases(
        [
            doc("case-a1", "acme", "rundll32.exe comsvcs.dll MiniDump lsass.dmp credential dumping on DC01"),
            doc("case-a2", "acme", "vssadmin delete shadows /all /quiet ransomware", "false_positive"),
            doc(
                "case-g1", "globex", "rundll32.exe comsvcs.dll MiniDump lsass.dmp credential dumping on DC01"
            ),
        ]
    )
    found = index.similar_cases("acme", "comsvcs.dll MiniDump of lsass on DC02", k=5)
    assert [c.case_id for c in found] == ["case-a1", "case-a2"]
    assert found[0].similarity > found[1].similarity
    assert found[0].disposition == "true_positive" and found[0].disposition_source == "model"
    assert [c.case_id for c in index.similar_cases("globex", "lsass", k=5)] == ["case-g1"]
    assert index.similar_cases("initech", "lsass") == []
    assert [c.case_id for c in index.similar_cases("acme", "lsass", exclude=["case-a1"])] == ["case-a2"]


def test_analyst_feedback_takes_precedence_when_reindexed(index: RetrievalIndex) -> None:
    index.index_cases([doc("case-1", "acme", "certutil -urlcache download of payload.exe")])
    index.index_cases(
        [
            doc(
                "case-1",
                "acme",
                "certutil -urlcache download of payload.exe",
                "false_positive",
                disposition_source="analyst",
                reason_code="known_admin_tool",
            )
        ]
    )
    [hit] = index.similar_cases("acme", "certutil urlcache download", k=3)
    assert (hit.disposition, hit.disposition_source, hit.reason_code) == (
        "false_positive",
        "analyst",
        "known_admin_tool",
    )


def test_background_indexing_batches_and_flushes(index: RetrievalIndex) -> None:
    for number in range(5):
        index.submit(doc(f"case-{number}", "acme", f"alert number {number} powershell -enc"))
    index.flush()
    assert len(index.similar_cases("acme", "powershell -enc", k=10)) == 5


def test_knowledge_base_finds_the_runbook_and_is_built_once(index: RetrievalIndex) -> None:
    docs = runbook_docs()
    assert {d.source for d in docs} >= {
        "tools/data/runbooks/credential-dumping.md",
        "tools/data/runbooks/approvals.md",
    }
    hits = index.search_knowledge(
        docs, "how to respond to a ransomware shadow copy deletion", k=2, kinds=["runbook"]
    )
    assert hits and "ransomware" in hits[0].title.lower()
    collection = index.ensure_knowledge(docs)
    assert collection.count() == len(docs)
    changed = [
        *docs,
        KnowledgeDoc(id="runbook:new#1", kind="runbook", title="New", text="new text", source="x"),
    ]
    fresh = RetrievalIndex(index.client, HashingEmbedder())
    assert fresh.ensure_knowledge(changed).count() == len(docs) + 1


def test_auto_embedder_choice(tmp_path: Path) -> None:
    assert embedder_choice(Settings(home=tmp_path, embedder="auto", embeddings_url="http://e/v1")) == "openai"
    assert embedder_choice(Settings(home=tmp_path, embedder="auto")) == "minilm"
    with pytest.raises(EmbeddingConfigError, match="SOCTRIAGE_EMBEDDINGS_TOKENIZER_PATH"):
        make_embedder(
            Settings(home=tmp_path, embedder="minilm", embeddings_tokenizer_path=tmp_path / "nope.json")
        )
    with pytest.raises(EmbeddingConfigError, match="SOCTRIAGE_EMBEDDINGS_URL"):
        make_embedder(Settings(home=tmp_path, embedder="openai"))


def test_openai_compatible_embeddings_endpoint() -> None:
    seen: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append({"path": request.url.path, "auth": request.headers.get("authorization"), **body})
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]}
            for i, t in reversed(list(enumerate(body["input"])))
        ]
        usage = {"prompt_tokens": 3, "total_tokens": 3}
        return httpx2.Response(
            200, json={"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    client = httpx2.Client(transport=httpx2.MockTransport(handler))
    embedder = OpenAIEmbedder("http://embed.test/v1", "e5-small", "sk-embed", http_client=client)
    rows = embedder.embed_documents(["a", "bbb"])
    assert rows.shape == (2, 3) and embedder.dim == 3
    assert rows[1][0] > rows[0][0]  # answers are put back in input order
    assert seen[0]["path"] == "/v1/embeddings" and seen[0]["model"] == "e5-small"
    assert seen[0]["auth"] == "Bearer sk-embed"


def test_real_default_model_is_semantic(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, embedder="auto")
    embedder = make_embedder(settings)
    query = embedder.embed_query("procdump wrote a memory dump of lsass.exe")
    near, far = embedder.embed_documents(
        ["credential dumping from LSASS process memory", "volume shadow copies deleted before encryption"]
    )
    assert float(query @ near) > float(query @ far) + 0.03, embedder.name


async def test_triage_looks_up_similar_past_cases_and_weighs_analyst_feedback(home: Path) -> None:
    from soctriage.agents.feedback import give_feedback

    settings = Settings(home=home)
    async with Triager(settings) as triager:
        first = await triager.triage(sample(SUDO))
        assert first.status == "escalated"
        triager.deps.connectors.retrieval.flush()
        second = await triager.triage(sample(SUDO).model_copy(update={"id": "wazuh-again"}))
        entries = triager.store.entries(second.case_id)
        [result] = [e for e in entries if e.kind == "tool_result" and e.payload["tool"] == "similar_cases"]
        [past] = result.payload["output"]["cases"]
        assert past["case_id"] == first.case_id and past["disposition"] == "inconclusive"
        assert past["similarity"] > 0.99 and past["near_duplicate"] and past["disposition_source"] == "model"

        give_feedback(
            triager.deps,
            first.case_id,
            by="alice",
            disposition="false_positive",
            reason_code="admin",
            note=None,
        )
        third = await triager.triage(sample(LSASS))
        verdict = next(e for e in triager.store.entries(third.case_id) if e.kind == "verdict")
        # Not alike enough to count: a precedent needs a near-identical alert.
        assert not any("similar past case" in s for s in verdict.payload["signals"])
        fourth = await triager.triage(sample(SUDO).model_copy(update={"id": "wazuh-third"}))
        verdict = next(e for e in triager.store.entries(fourth.case_id) if e.kind == "verdict")
        [signal] = [s for s in verdict.payload["signals"] if "similar past case" in s]
        assert signal.startswith("-1") and f"{first.case_id}" in signal and "false_positive" in signal
