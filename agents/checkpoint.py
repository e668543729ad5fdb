"""Where LangGraph checkpoints live: a SQLite file beside the store, or PostgreSQL when configured.

The embedded saver is LangGraph's own `SqliteSaver` called directly from the event loop. Each checkpoint
write is a local SQLite commit of well under a millisecond; `AsyncSqliteSaver` would hand every query to a
worker thread and back, which measured as ~16 ms of a ~36 ms triage (benchmarks/bench_triage.py).

A finished run keeps only its last checkpoint (`prune_finished`): its actions, and where a grouped alert's
re-triage starts from, are all that is read of it later; what each step did is in the case's ledger. A run
paused for a human keeps every checkpoint until it finishes. Cases that finished before runs pruned their own
are pruned once by `prune_finished_cases` (`soctriage cases prune-checkpoints`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from soctriage.agents.graph import build_graph
from soctriage.agents.state import checkpoint_types
from soctriage.service.config import Settings

logger = logging.getLogger(__name__)


class InlineSqliteSaver(SqliteSaver):
    """`SqliteSaver` usable from async graphs: the async methods run the sync ones in place."""

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(
        self,
        config: dict[str, Any] | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in self._list(config, filter=filter, before=before, limit=limit):
            yield item

    def _list(self, config: dict[str, Any] | None, **kwargs: Any) -> Iterator[CheckpointTuple]:
        return self.list(config, **kwargs)

    async def aput(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: dict[str, Any], writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """LangGraph's `prune`, which `SqliteSaver` lacks, for its "keep_latest" strategy: each thread keeps
        its latest checkpoint per namespace and that checkpoint's writes, in one transaction per call."""
        if strategy != "keep_latest":
            raise ValueError(f"unsupported prune strategy: {strategy!r}")
        with self.cursor() as cur:
            for thread_id in thread_ids:
                for statement in _PRUNE_SQLITE:
                    cur.execute(statement, {"thread_id": thread_id})

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)


_LATEST = """
    SELECT checkpoint_ns, max(checkpoint_id) FROM checkpoints WHERE thread_id = :thread_id GROUP BY checkpoint_ns
"""
_PRUNE_SQLITE = (
    f"DELETE FROM writes WHERE thread_id = :thread_id AND (checkpoint_ns, checkpoint_id) NOT IN ({_LATEST})",
    f"DELETE FROM checkpoints WHERE thread_id = :thread_id AND (checkpoint_ns, checkpoint_id) NOT IN ({_LATEST})",
    # As PostgresSaver.prune does: a kept checkpoint names no parent that is gone.
    "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = :thread_id",
)


async def prune_finished(saver: BaseCheckpointSaver, thread_id: str) -> None:
    """Delete a finished run's checkpoints but its last, with their writes. Housekeeping: when another
    process changes the thread meanwhile (PostgreSQL refuses the prune then), its own finish prunes it."""
    try:
        await saver.aprune([thread_id], strategy="keep_latest")
    except Exception as exc:
        if not _concurrent_change(exc):
            raise
        logger.info("checkpoints of %s not pruned: %s", thread_id, exc)


def _concurrent_change(exc: Exception) -> bool:
    try:
        from psycopg import errors
    except ImportError:
        return False
    return isinstance(exc, errors.SerializationFailure | errors.DeadlockDetected)


@dataclass(frozen=True)
class PruneReport:
    """What `prune_finished_cases` did. `bytes` counts what the deleted rows stored (checkpoints, their
    writes and, on PostgreSQL, channel blobs no kept checkpoint uses); a SQLite file reuses that space for new
    checkpoints rather than shrinking."""

    cases: int
    checkpoints: int
    bytes: int
    unfinished: int  # cases left whole: paused for a human, or a run not finished (running, or cut short)


async def prune_finished_cases(settings: Settings, *, batch: int = 100) -> PruneReport:
    """Keep only the last checkpoint of every finished case that still has more: the cases that finished
    before runs pruned their own. A case whose graph has a step left (paused for a human, running, or cut
    short by a crash) keeps every checkpoint. A run that starts on a case between its check and its prune loses
    nothing it needs: the prune keeps the latest checkpoint and its writes, all a resume reads."""
    if not _on_postgres(settings) and not _sqlite_path(settings).exists():
        return PruneReport(0, 0, 0, 0)
    pruned, unfinished, checkpoints, freed = 0, 0, 0, 0
    async with open_checkpointer(settings) as saver:
        graph = build_graph(saver)
        tables = _CheckpointTables(saver)
        threads = [str(row[0]) for row in await tables.rows(_WITH_HISTORY, None)]
        for start in range(0, len(threads), batch):
            finished: list[str] = []
            for thread_id in threads[start : start + batch]:
                snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
                if snapshot.next or snapshot.tasks:
                    unfinished += 1
                else:
                    finished.append(thread_id)
            if not finished:
                continue
            [(count_before, bytes_before)] = await tables.rows(_STORED, finished)
            for thread_id in finished:
                await prune_finished(saver, thread_id)
            [(count_after, bytes_after)] = await tables.rows(_STORED, finished)
            pruned += len(finished)
            checkpoints += int(count_before) - int(count_after)
            freed += int(bytes_before) - int(bytes_after)
    return PruneReport(pruned, checkpoints, freed, unfinished)


class _CheckpointTables:
    """Reads of the savers' own tables that LangGraph has no call for, on the saver's connection."""

    def __init__(self, saver: BaseCheckpointSaver) -> None:
        self._saver = saver

    async def rows(self, statements: dict[str, str], thread_ids: list[str] | None) -> list[tuple[Any, ...]]:
        saver = self._saver
        if isinstance(saver, InlineSqliteSaver):
            with saver.cursor(transaction=False) as cur:
                return cur.execute(statements["sqlite"], {"ids": json.dumps(thread_ids)}).fetchall()
        async with saver.conn.connection() as conn:  # type: ignore[attr-defined]  # open_checkpointer's pool
            cursor = await conn.execute(statements["postgresql"], {"ids": thread_ids})
            return [tuple(row.values()) for row in await cursor.fetchall()]


# Threads with more than their last checkpoint in a namespace: those a prune would change.
_WITH_HISTORY_SQL = """
    SELECT DISTINCT thread_id FROM (
        SELECT thread_id FROM checkpoints GROUP BY thread_id, checkpoint_ns HAVING count(*) > 1
    ) AS threads ORDER BY thread_id
"""
_WITH_HISTORY = {"sqlite": _WITH_HISTORY_SQL, "postgresql": _WITH_HISTORY_SQL}
# The threads' checkpoints, and the bytes they and everything hanging off them store.
_STORED = {
    "sqlite": """
        SELECT
            (SELECT count(*) FROM checkpoints WHERE thread_id IN (SELECT value FROM json_each(:ids))),
            (SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints
                WHERE thread_id IN (SELECT value FROM json_each(:ids)))
            + (SELECT coalesce(sum(length(value)), 0) FROM writes
                WHERE thread_id IN (SELECT value FROM json_each(:ids)))
    """,
    "postgresql": """
        SELECT
            (SELECT count(*) FROM checkpoints WHERE thread_id = ANY(%(ids)s)) AS checkpoints,
            (SELECT coalesce(sum(pg_column_size(checkpoint) + pg_column_size(metadata)), 0) FROM checkpoints
                WHERE thread_id = ANY(%(ids)s))
            + (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_blobs WHERE thread_id = ANY(%(ids)s))
            + (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_writes WHERE thread_id = ANY(%(ids)s))
            AS bytes
    """,
}


def _on_postgres(settings: Settings) -> bool:
    return bool(settings.database_url) and settings.sqlalchemy_url.startswith("postgresql")


def _sqlite_path(settings: Settings) -> Path:
    # A file of its own beside the store: SQLite allows one writer per file, and the ledger's writes must
    # never queue behind checkpoint writes.
    return settings.home / "checkpoints.db"


def serializer() -> JsonPlusSerializer:
    """Revives only the project's own state types from a checkpoint, nothing else."""
    return JsonPlusSerializer(allowed_msgpack_modules=checkpoint_types())


# Connections per process for PostgreSQL checkpoints: enough that concurrent runs rarely wait for one.
CHECKPOINT_POOL_SIZE = 10
# Any constant works, as long as every process that sets up this database uses the same one.
_SETUP_LOCK_KEY = 0x50C7_C4EC


async def _try_lock(conn: Any) -> bool:
    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (_SETUP_LOCK_KEY,))
    return bool((await cursor.fetchone())["locked"])


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver]:
    if _on_postgres(settings):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        url = "postgresql://" + settings.sqlalchemy_url.split("://", 1)[1]
        # A pool, not `from_conn_string`'s single connection: the saver serialises every call on a connection
        # behind one lock, so a worker's concurrent runs would queue for each other's checkpoint writes.
        connection = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        pool = AsyncConnectionPool(
            url, min_size=1, max_size=CHECKPOINT_POOL_SIZE, kwargs=connection, open=False
        )
        async with pool:
            saver = AsyncPostgresSaver(conn=pool, serde=serializer())
            # setup() creates tables without locking: two workers starting together would both try, and one
            # would fail on a duplicate type. A session advisory lock makes them take turns; it is polled, not
            # waited on, because setup's CREATE INDEX CONCURRENTLY waits for every open transaction, and a
            # waiting lock request is one (a deadlock).
            async with pool.connection() as conn:
                while not await _try_lock(conn):
                    await asyncio.sleep(0.1)
                try:
                    await saver.setup()
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))
            yield saver
        return
    settings.home.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE: the saver commits after each call, so a checkpoint's writes are one transaction (not one per
    # row), and it takes the write lock up front rather than upgrading to it under another process.
    conn = sqlite3.connect(_sqlite_path(settings), check_same_thread=False, isolation_level="IMMEDIATE")
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {settings.sqlite_synchronous}")
        conn.execute("PRAGMA busy_timeout = 30000")
        saver = InlineSqliteSaver(conn, serde=serializer())
        saver.setup()
        yield saver
    finally:
        conn.close()
