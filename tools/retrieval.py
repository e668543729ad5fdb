"""Retrieval over Chroma: similar past cases (one collection per tenant) and the knowledge base (ATT&CK
techniques, LOLBins and the project's runbooks, one shared collection).

A case is indexed when it reaches a final status, and again when an analyst gives feedback (the analyst's
disposition then takes precedence over the model's). Indexing runs on a background thread in batches, so the
triage path only pays for a queue put; a case closed a moment ago may therefore not be found for a few
milliseconds. Embedded Chroma (<home>/chroma) serves one process; several processes share a Chroma server
(Settings `chroma_url`).

Vectors are always computed by our own embedder (tools/retrieval_embed.py) and handed to Chroma, which is
never allowed to pick (and download) a default model.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from soctriage.service.config import Settings
from soctriage.tools.retrieval_batching import BatchingEmbedder
from soctriage.tools.retrieval_docs import (
    CaseDocument,
    KnowledgeDoc,
    KnowledgeHit,
    KnowledgeKind,
    SimilarCase,
)
from soctriage.tools.retrieval_embed import CachedEmbedder, Embedder, make_embedder

log = logging.getLogger("soctriage.retrieval")

_INDEX_BATCH = 128
_INDEX_LINGER_S = 1.0


def _collection_name(prefix: str, embedder: str, key: str = "") -> str:
    # Chroma names allow [a-zA-Z0-9._-] and 3-512 chars; tenants and model names may hold anything else.
    digest = hashlib.sha256(f"{embedder}\x1f{key}".encode()).hexdigest()[:24]
    return f"{prefix}-{digest}"


def _meta(doc: CaseDocument) -> dict[str, Any]:
    # Chroma metadata values are scalars; tuples travel as "\x1f"-joined strings.
    return {
        "case_id": doc.case_id,
        "tenant": doc.tenant,
        "status": doc.status,
        "disposition": doc.disposition or "",
        "disposition_source": doc.disposition_source,
        "reason_code": doc.reason_code or "",
        "title": doc.title[:500],
        "summary": doc.summary,
        "techniques": "\x1f".join(doc.techniques),
    }


class RetrievalIndex:
    """Both indexes of one Chroma (embedded folder or server) and one embedder."""

    def __init__(self, client: Any, embedder: Embedder) -> None:
        self.client = client
        self.embedder = CachedEmbedder(BatchingEmbedder(embedder))
        self._known_nonempty: set[str] = set()
        self._case_collections: dict[str, Any] = {}
        self._knowledge_ready = False
        self._lock = threading.Lock()
        self._pending: queue.Queue[CaseDocument | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._flushing = threading.Event()

    @classmethod
    def open(cls, settings: Settings, *, embedder: Embedder | None = None) -> RetrievalIndex:
        return cls(chroma_client(settings), embedder or make_embedder(settings))

    # ---- cases -------------------------------------------------------------------------------------

    def _cases(self, tenant: str) -> Any:
        # Looked up once per tenant: get_or_create costs a catalog round trip (~1.5 ms) per call, and a
        # tenant's cases collection is never dropped.
        collection = self._case_collections.get(tenant)
        if collection is None:
            collection = self.client.get_or_create_collection(
                _collection_name("cases", self.embedder.name, tenant),
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"tenant": tenant, "embedder": self.embedder.name},
            )
            self._case_collections[tenant] = collection
        return collection

    def has_cases(self, tenant: str) -> bool:
        """Whether the tenant has anything indexed; cheap after the first yes (cases are never removed)."""
        if tenant in self._known_nonempty:
            return True
        if self._cases(tenant).count() > 0:
            self._known_nonempty.add(tenant)
            return True
        return False

    def index_cases(self, docs: Sequence[CaseDocument]) -> None:
        """Add or replace these cases now (grouped per tenant, one embedding batch per group)."""
        by_tenant: dict[str, list[CaseDocument]] = {}
        for doc in docs:
            by_tenant.setdefault(doc.tenant, []).append(doc)
        for tenant, group in by_tenant.items():
            latest = list({d.case_id: d for d in group}.values())
            vectors = self.embedder.embed_documents([d.text for d in latest])
            # No `documents`: nothing reads a case's text back from Chroma, and storing it costs its full-text
            # index on every write.
            self._cases(tenant).upsert(
                ids=[d.case_id for d in latest], embeddings=vectors, metadatas=[_meta(d) for d in latest]
            )
            self._known_nonempty.add(tenant)

    def submit(self, doc: CaseDocument) -> None:
        """Index `doc` on the background thread (batched with whatever else is waiting)."""
        # Put under the lock: `close` then never ends the thread with a case queued behind its stop.
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="soctriage-indexer", daemon=True)
                self._thread.start()
            self._pending.put(doc)

    def flush(self) -> None:
        """Wait until every submitted case is indexed."""
        self._flushing.set()
        try:
            self._pending.join()
        finally:
            self._flushing.clear()

    def close(self) -> None:
        """Index every submitted case, end the background thread and release the Chroma client: Chroma keeps
        one system per folder for the process until its last client closes, so a folder deleted and made anew
        would otherwise be written through the old one."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None and thread.is_alive():
                self._pending.put(None)
                thread.join()
        self.client.close()

    def _drain(self) -> None:
        stop = False
        while not stop:
            batch: list[CaseDocument] = []
            item = self._pending.get()
            # Linger briefly: one Chroma write costs about as much for 64 cases as for one.
            deadline = time.monotonic() + _INDEX_LINGER_S
            while True:
                if item is None:  # `close`: what came before is in the batch; nothing comes after
                    self._pending.task_done()
                    stop = True
                    break
                batch.append(item)
                if len(batch) >= _INDEX_BATCH or self._flushing.is_set():
                    break
                try:
                    item = self._pending.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if not batch:
                continue
            try:
                self.index_cases(batch)
            except Exception:  # the index is derived data: a failure must not stop later cases
                log.exception("indexing %d case(s) failed", len(batch))
            finally:
                for _ in batch:
                    self._pending.task_done()

    def similar_cases(
        self, tenant: str, text: str, k: int = 5, *, exclude: Iterable[str] = ()
    ) -> list[SimilarCase]:
        """The tenant's past cases nearest to `text`, best first; never another tenant's."""
        if not text.strip() or not self.has_cases(tenant):
            return []
        excluded = set(exclude)
        # Chroma returns what it has when asked for more, so no count() round-trip per query.
        found = self._cases(tenant).query(
            query_embeddings=[self.embedder.embed_query(text)],
            n_results=k + len(excluded),
            include=["metadatas", "distances"],
        )
        hits = []
        for meta, distance in zip(found["metadatas"][0], found["distances"][0], strict=True):
            if meta["case_id"] in excluded or meta.get("tenant") != tenant:
                continue
            hits.append(
                SimilarCase(
                    case_id=meta["case_id"],
                    status=meta["status"],
                    disposition=meta["disposition"] or None,
                    disposition_source=meta["disposition_source"],
                    reason_code=meta["reason_code"] or None,
                    title=meta["title"],
                    summary=meta["summary"],
                    techniques=tuple(t for t in meta["techniques"].split("\x1f") if t),
                    similarity=round(1.0 - float(distance), 4),
                    near_duplicate=1.0 - float(distance) >= self.embedder.near_duplicate,
                )
            )
        return hits[:k]

    # ---- knowledge base ----------------------------------------------------------------------------

    def ensure_knowledge(self, docs: Sequence[KnowledgeDoc]) -> Any:
        """The knowledge collection holding exactly `docs`; rebuilt only when their content changed."""
        digest = hashlib.sha256()
        for doc in docs:
            digest.update(f"{doc.id}\x1f{doc.title}\x1f{doc.text}\x1e".encode())
        version = digest.hexdigest()
        name = _collection_name("knowledge", self.embedder.name)
        with self._lock:
            collection = self.client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
            if self._knowledge_ready or (collection.metadata or {}).get("version") == version:
                self._knowledge_ready = True
                return collection
            self.client.delete_collection(name)
            collection = self.client.create_collection(
                name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"version": version, "embedder": self.embedder.name},
            )
            for start in range(0, len(docs), 256):
                chunk = docs[start : start + 256]
                collection.add(
                    ids=[d.id for d in chunk],
                    embeddings=self.embedder.embed_documents([f"{d.title}. {d.text}" for d in chunk]),
                    documents=[d.text for d in chunk],
                    metadatas=[{"kind": d.kind, "title": d.title, "source": d.source} for d in chunk],
                )
            self._knowledge_ready = True
            return collection

    def search_knowledge(
        self, docs: Sequence[KnowledgeDoc], text: str, k: int = 5, kinds: Sequence[KnowledgeKind] = ()
    ) -> list[KnowledgeHit]:
        collection = self.ensure_knowledge(docs)
        if not text.strip() or collection.count() == 0:
            return []
        where: Any = None
        if len(kinds) == 1:
            where = {"kind": kinds[0]}
        elif kinds:
            where = {"kind": {"$in": list(kinds)}}
        found = collection.query(
            query_embeddings=[self.embedder.embed_query(text)],
            n_results=min(k, collection.count()),
            where=where,
            include=["metadatas", "distances", "documents"],
        )
        return [
            KnowledgeHit(
                id=doc_id,
                kind=meta["kind"],
                title=meta["title"],
                text=document,
                source=meta["source"],
                similarity=round(1.0 - float(distance), 4),
            )
            for doc_id, meta, document, distance in zip(
                found["ids"][0],
                found["metadatas"][0],
                found["documents"][0],
                found["distances"][0],
                strict=True,
            )
        ]


def chroma_client(settings: Settings) -> Any:
    """A Chroma server client when `chroma_url` is set, else the embedded folder <home>/chroma."""
    import chromadb

    # Telemetry off: the service must not phone home, and offline hosts would only log failures.
    chroma_settings = chromadb.Settings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlsplit(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"SOCTRIAGE_CHROMA_URL={settings.chroma_url!r}: expected http(s)://host[:port]")
        return chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    path = Path(settings.home) / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


class LazyIndex:
    """The retrieval index of whoever builds it (a Triager, `serve`), opened on first use: opening starts Chroma
    and may load the embedding model, which a run that closes no case and looks nothing up never needs. Hand
    one down to everything that should share it (the graph indexing, the tools querying, `serve`'s API and its
    in-process workers), so the model is loaded once and the indexer thread sees every case; two of them share
    nothing, whatever their settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._index: RetrievalIndex | None = None
        self._lock = threading.Lock()

    def get(self) -> RetrievalIndex:
        """The index, opened by the first caller; the first call may take seconds, so call it off the event
        loop (`asyncio.to_thread`)."""
        with self._lock:
            if self._index is None:
                self._index = RetrievalIndex.open(self.settings)
            return self._index

    def flush(self) -> None:
        """Wait until every case submitted so far is indexed (nothing to wait for if it was never opened)."""
        if self._index is not None:
            self._index.flush()

    def close(self) -> None:
        """Index what is submitted and release the index: its indexer thread would otherwise keep it (and its
        model) alive for the rest of the process. A later `get` opens it again."""
        with self._lock:
            index, self._index = self._index, None
        if index is not None:
            index.close()
