"""`POST /v1/embeddings` of `soctriage serve` (from its own MiniLM), and the workers that embed through it
(SOCTRIAGE_EMBEDDER=host): the same vectors, the same collections, the limits and who may call it."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_support import serving
from soctriage.agents.run import Triager
from soctriage.service.api.app import create_app
from soctriage.service.config import Settings
from soctriage.tools.retrieval_batching import BatchingEmbedder
from soctriage.tools.retrieval_embed import (
    EMBEDDINGS_MAX_CHARS,
    EMBEDDINGS_MAX_INPUTS,
    MINILM_TOKENIZER,
    EmbeddingConfigError,
    HashingEmbedder,
    HostEmbedder,
    MiniLMEmbedder,
    make_embedder,
)
from test_graph import sample

OPERATOR = "operator-token-for-embedding-tests"
ANALYST = "analyst-token-for-embedding-tests"
SUDO = "wazuh-admin-sudo-benign.json"  # enriched (similar_cases among the lookups), then escalated


def _key(name: str, role: str, token: str) -> str:
    return f"{name}:acme:{role}:{hashlib.sha256(token.encode()).hexdigest()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        home=tmp_path_factory.mktemp("embeddings") / "home",
        embedder="minilm",
        api_keys=[_key("ops", "operator", OPERATOR), _key("alice", "analyst", ANALYST)],
    )
    with TestClient(create_app(settings, auth_enabled=True)) as client:
        yield client


@pytest.fixture(scope="module")
def local() -> MiniLMEmbedder:
    return MiniLMEmbedder(MINILM_TOKENIZER)


def embed(client: TestClient, token: str | None, body: object) -> object:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/v1/embeddings", json=body, headers=headers)


def test_vectors_are_the_local_minilms_through_the_openai_client(
    server: TestClient, local: MiniLMEmbedder
) -> None:
    host = HostEmbedder("http://testserver/v1", OPERATOR, http_client=server)
    texts = [f"powershell -enc payload {n} on host WS{n:03d}" for n in range(EMBEDDINGS_MAX_INPUTS + 44)]
    # More texts than one request takes: the host embedder splits them, and each answer keeps input order.
    rows = host.embed_documents(texts)
    assert rows.shape == (len(texts), 384)
    expected = np.concatenate(
        [
            local.embed_documents(texts[:EMBEDDINGS_MAX_INPUTS]),
            local.embed_documents(texts[EMBEDDINGS_MAX_INPUTS:]),
        ]
    )
    np.testing.assert_array_equal(rows, expected)
    query = "procdump wrote a memory dump of lsass.exe"
    np.testing.assert_array_equal(host.embed_query(query), local.embed_query(query))
    assert (host.name, host.dim, host.near_duplicate, host.symmetric) == (
        local.name,
        local.dim,
        local.near_duplicate,
        local.symmetric,
    )


def test_plain_json_answer_is_openai_shaped(server: TestClient, local: MiniLMEmbedder) -> None:
    one = embed(server, OPERATOR, {"input": "vssadmin delete shadows /all /quiet"})
    assert one.status_code == 200
    body = one.json()
    assert body["object"] == "list" and body["model"] == local.name
    assert body["usage"] == {"prompt_tokens": 35, "total_tokens": 35}
    [row] = body["data"]
    assert row["index"] == 0 and row["object"] == "embedding"
    np.testing.assert_allclose(
        row["embedding"], local.embed_query("vssadmin delete shadows /all /quiet"), atol=1e-7
    )
    packed = embed(server, OPERATOR, {"input": ["a", "b"], "encoding_format": "base64", "model": local.name})
    vectors = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in packed.json()["data"]]
    np.testing.assert_array_equal(np.stack(vectors), local.embed_documents(["a", "b"]))


def test_limits_and_other_models_are_refused_with_what_is_wrong(server: TestClient) -> None:
    many = embed(server, OPERATOR, {"input": ["x"] * (EMBEDDINGS_MAX_INPUTS + 1)})
    assert many.status_code == 413
    assert (
        many.json()["detail"]
        == f"input: {EMBEDDINGS_MAX_INPUTS + 1} texts, limit is {EMBEDDINGS_MAX_INPUTS} per request"
    )
    long = embed(server, OPERATOR, {"input": ["y" * 4000] * 129})
    assert long.status_code == 413
    assert (
        long.json()["detail"]
        == f"input: 516000 characters in all, limit is {EMBEDDINGS_MAX_CHARS} per request"
    )
    empty = embed(server, OPERATOR, {"input": []})
    assert empty.status_code == 422 and "empty list" in empty.json()["detail"]
    other = embed(server, OPERATOR, {"input": "x", "model": "text-embedding-3-small"})
    assert other.status_code == 422
    assert (
        other.json()["detail"]
        == "model: this server embeds with all-MiniLM-L6-v2-int8, not text-embedding-3-small"
    )
    malformed = embed(server, OPERATOR, {"input": [1, 2]})
    assert malformed.status_code == 422


def test_only_operator_keys_may_embed(server: TestClient) -> None:
    assert embed(server, None, {"input": "x"}).status_code == 401
    assert embed(server, "stk_unknown_key", {"input": "x"}).status_code == 401
    refused = embed(server, ANALYST, {"input": "x"})
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    assert embed(server, OPERATOR, {"input": "x"}).status_code == 200
    host = HostEmbedder("http://testserver/v1", ANALYST, http_client=server)
    with pytest.raises(EmbeddingConfigError, match="answered 403: role analyst may not do this"):
        host.embed_query("x")


def test_host_mode_needs_an_url_and_refuses_a_server_of_another_model(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingConfigError, match="SOCTRIAGE_EMBEDDER=host needs SOCTRIAGE_EMBEDDINGS_URL"):
        make_embedder(Settings(home=tmp_path, embedder="host"))
    hashing = Settings(home=tmp_path / "hashing", embedder="hashing")
    with TestClient(create_app(hashing, auth_enabled=False)) as client:
        host = HostEmbedder("http://testserver/v1", None, http_client=client)
        # Refused by the server, which names its model, before any vector could reach MiniLM's collections.
        with pytest.raises(
            EmbeddingConfigError, match="422: model: this server embeds with hashing-384, not all-Mi"
        ):
            host.embed_query("x")


async def test_a_triager_on_the_host_embedder_shares_the_servers_collections(tmp_path: Path) -> None:
    home = tmp_path / "home"
    own = Settings(home=home, embedder="minilm")
    # The Triager builds its embedder from settings alone, so the server listens on loopback, in this process.
    with serving(create_app(own, auth_enabled=False)) as url:
        shared = Settings(home=home, embedder="host", embeddings_url=f"{url}/v1")
        async with Triager(own) as triager:
            first = (await triager.triage(sample(SUDO))).case_id
        async with Triager(shared) as triager:
            again = await triager.triage(sample(SUDO).model_copy(update={"id": "wazuh-again"}))
            [past] = _similar(triager, again.case_id)
            assert past["case_id"] == first and past["similarity"] > 0.99 and past["near_duplicate"]
        async with Triager(own) as triager:
            third = await triager.triage(sample(SUDO).model_copy(update={"id": "wazuh-third"}))
            # The case the host-embedder Triager indexed is found by the server's own MiniLM.
            assert {c["case_id"] for c in _similar(triager, third.case_id)} == {first, again.case_id}


def _similar(triager: Triager, case_id: str) -> list[dict]:
    [result] = [
        e
        for e in triager.store.entries(case_id)
        if e.kind == "tool_result" and e.payload["tool"] == "similar_cases"
    ]
    return result.payload["output"]["cases"]


class SlowHashing(HashingEmbedder):
    """The hashing embedder taking 50 ms a call, recording how many texts each call embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(len(texts))
        time.sleep(0.05)
        return super().embed_documents(texts)


def test_queries_asked_at_the_same_time_are_embedded_in_one_call() -> None:
    inner = SlowHashing()
    batching = BatchingEmbedder(inner)
    queries = [f"encoded powershell on WS{n:03d}" for n in range(16)]
    with ThreadPoolExecutor(16) as pool:
        rows = list(pool.map(batching.embed_query, queries))
    # The first query goes alone; the fifteen asked while it runs go together in the next call.
    assert len(inner.calls) < len(queries) and sum(inner.calls) == len(queries)
    np.testing.assert_array_equal(np.stack(rows), HashingEmbedder().embed_documents(queries))


class FailingOnce(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the server went away")
        return super().embed_documents(texts)


def test_a_failed_call_fails_its_callers_and_not_the_next() -> None:
    batching = BatchingEmbedder(FailingOnce())
    with pytest.raises(ConnectionError, match="went away"):
        batching.embed_query("first")
    np.testing.assert_array_equal(batching.embed_query("second"), HashingEmbedder().embed_query("second"))
