"""Concurrent embedding calls of one process made into one: see `BatchingEmbedder`."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from soctriage.tools.retrieval_embed import Embedder, WrappedEmbedder


class _Waiting:
    """Texts one caller wants embedded, and then their rows (or the error that stopped them)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts
        self.rows: np.ndarray | None = None
        self.error: BaseException | None = None


class BatchingEmbedder(WrappedEmbedder):
    """Embeds in one call what threads ask for at the same time: a worker's concurrent jobs and a round's
    lookups each embed their query on a thread of their own, and the server answers every worker's requests.
    The first caller embeds at once; whoever asks while it runs waits for it and is embedded with the others
    in the next call, so a lone query waits for nothing. A model of two roles (e5) embeds its queries alone."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self._ready = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._busy = False

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        mine = _Waiting(texts)
        with self._ready:
            self._waiting.append(mine)
            while self._busy and mine.rows is None and mine.error is None:
                self._ready.wait()
            batch = None
            if mine.rows is None and mine.error is None:
                batch, self._waiting, self._busy = self._waiting, [], True
        if batch is not None:
            self._embed(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.rows is not None
        return mine.rows

    def embed_query(self, text: str) -> np.ndarray:
        if not self.inner.symmetric:
            return self.inner.embed_query(text)
        return self.embed_documents([text])[0]

    def _embed(self, batch: list[_Waiting]) -> None:
        try:
            rows = self.inner.embed_documents([t for waiting in batch for t in waiting.texts])
            start = 0
            for waiting in batch:
                waiting.rows, start = rows[start : start + len(waiting.texts)], start + len(waiting.texts)
        except Exception as exc:
            for waiting in batch:
                waiting.error = exc
        finally:
            with self._ready:
                self._busy = False
                self._ready.notify_all()
