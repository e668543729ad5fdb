"""The durable job queue between intake and the workers.

Two implementations behind one interface: the embedded default keeps job rows in the SQLite store (claimed with
a lease that the running worker renews, so a killed worker's jobs are claimed again), and scale-out uses
procrastinate on PostgreSQL (`queue_pg.py`). Either way a job is written in the same transaction as the case it
belongs to (`Store.create_cases(..., on_created=...)`), so an accepted alert is never without its job.

Jobs name a case and a task: `triage` runs (or resumes) the case's graph, `decide` resumes a paused case with a
human decision, `grouped` scores an alert that joined the case (and triages the case again when it adds
something). Jobs of one case never run at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from soctriage.service.config import Settings
from soctriage.service.domain import utc_now
from soctriage.service.store import Store
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.schema import jobs
from sqlalchemy import Connection, func, select, update

log = logging.getLogger("soctriage.queue")

Task = Literal["triage", "decide", "grouped"]
JobState = Literal["queued", "running", "done", "failed"]
# How long an idle embedded dispatcher sleeps between looks at the jobs table (a local enqueue wakes it sooner).
IDLE_POLL_S = 0.25
# The embedded dispatchers running in this process, each as (its loop, its wake-up event).
_DISPATCHERS: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
_INSERT_JOB = jobs.insert().returning(jobs.c.id, sort_by_parameter_order=True)


@dataclass(frozen=True)
class JobSpec:
    case_id: str
    task: Task
    args: dict[str, Any]


@dataclass(frozen=True)
class Job:
    id: int
    case_id: str
    task: Task
    args: dict[str, Any]
    attempt: int


class JobFailedForGood(Exception):
    """Raised by a handler for an error that retrying cannot fix (the case is marked failed at once)."""


# What a worker does with a job, and what it does when a job's case cannot be processed at all.
Handler = Callable[[Job], Awaitable[None]]
GiveUp = Callable[[Job, str], Awaitable[None]]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobQueue(ABC):
    """Enqueue inside the caller's transaction; wait for jobs; run workers."""

    @abstractmethod
    def enqueue(self, conn: Connection, specs: Sequence[JobSpec]) -> list[int]:
        """Add jobs inside the open transaction `conn` (they commit or roll back with it)."""

    def enqueue_now(self, store: Store, spec: JobSpec) -> int:
        with write_transaction(store.engine) as conn:
            [job_id] = self.enqueue(conn, [spec])
            return job_id

    @abstractmethod
    def state(self, job_id: int) -> JobState | None: ...

    @abstractmethod
    def depth(self) -> int:
        """Jobs waiting or running."""

    async def wait(self, job_id: int, timeout_s: float) -> JobState | None:
        """Poll until the job is done or failed, or `timeout_s` passes; returns the last state seen."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            state = await asyncio.to_thread(self.state, job_id)
            if state in ("done", "failed") or asyncio.get_running_loop().time() >= deadline:
                return state
            await asyncio.sleep(0.05)

    @abstractmethod
    async def work(self, handler: Handler, give_up: GiveUp, concurrency: int, stop: asyncio.Event) -> None:
        """Run jobs with up to `concurrency` at once until `stop` is set (running jobs then finish)."""


def open_queue(settings: Settings, store: Store) -> JobQueue:
    """The queue that goes with the configured store: procrastinate on PostgreSQL, job rows on SQLite."""
    if store.engine.dialect.name == "postgresql":
        from soctriage.service.queue_pg import ProcrastinateQueue

        return ProcrastinateQueue(settings, store)
    return SqliteQueue(settings, store)


class SqliteQueue(JobQueue):
    """Job rows in the embedded store. A worker claims a job by setting a lease and renews the lease while the
    job runs; a job whose lease ran out (its worker was killed) is claimed again. A failed attempt is retried
    with backoff until `job_max_attempts`."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.lease = timedelta(seconds=settings.job_lease_s)

    def enqueue(self, conn: Connection, specs: Sequence[JobSpec]) -> list[int]:
        if not specs:
            return []
        now = utc_now()
        rows = [
            {
                "case_id": spec.case_id,
                "task": spec.task,
                "args": spec.args,
                "status": "queued",
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for spec in specs
        ]
        ids = list(conn.execute(_INSERT_JOB, rows).scalars())
        self._notify()
        return ids

    @staticmethod
    def _notify() -> None:
        # Wakes the dispatchers of this process (they may run on another thread's loop); others poll.
        for loop, wake in list(_DISPATCHERS):
            loop.call_soon_threadsafe(wake.set)

    def state(self, job_id: int) -> JobState | None:
        with self.store.engine.connect() as conn:
            return conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()

    def depth(self) -> int:
        with self.store.engine.connect() as conn:
            query = select(func.count()).where(jobs.c.status.in_(("queued", "running")))
            return int(conn.execute(query).scalar_one())

    def claim(self, limit: int, busy_cases: set[str], name: str) -> list[Job]:
        """Take up to `limit` runnable jobs: queued and due, or running with an expired lease; never two of
        one case, nor one of a case that has a live job."""
        now = utc_now()
        live = select(jobs.c.case_id).where(jobs.c.status == "running", jobs.c.lease_until >= now)
        columns = (jobs.c.id, jobs.c.case_id, jobs.c.task, jobs.c.args, jobs.c.attempts)
        # Two queries, each walking the (status, id) index in order and stopping at the limit: one query with
        # an OR across statuses made SQLite collect and sort every queued job on every claim.
        due = (jobs.c.lease_until.is_(None)) | (jobs.c.lease_until <= now)
        free_case = jobs.c.case_id.not_in(live)
        queued = select(*columns).where(jobs.c.status == "queued", due, free_case)
        orphaned = select(*columns).where(jobs.c.status == "running", jobs.c.lease_until < now, free_case)
        with write_transaction(self.store.engine) as conn:
            rows = [
                *conn.execute(orphaned.order_by(jobs.c.id).limit(limit * 4)),
                *conn.execute(queued.order_by(jobs.c.id).limit(limit * 4)),
            ]
            claimed: list[Job] = []
            taken = set(busy_cases)
            for row in sorted(rows, key=lambda r: r.id):
                if len(claimed) == limit:
                    break
                if row.case_id in taken:
                    continue
                taken.add(row.case_id)
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id)
                    .values(
                        status="running",
                        attempts=row.attempts + 1,
                        worker=name,
                        lease_until=now + self.lease,
                        updated_at=now,
                    )
                )
                claimed.append(Job(row.id, row.case_id, row.task, row.args, row.attempts + 1))
            return claimed

    def renew(self, job_ids: Sequence[int], name: str) -> None:
        if not job_ids:
            return
        now = utc_now()
        with write_transaction(self.store.engine) as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(job_ids), jobs.c.worker == name, jobs.c.status == "running")
                .values(lease_until=now + self.lease, updated_at=now)
            )

    def finish(self, job: Job, error: str | None, *, retry: bool) -> None:
        now = utc_now()
        if error is None:
            values: dict[str, Any] = {"status": "done", "lease_until": None, "error": None}
        elif retry:
            # Exponential backoff, capped: lease_until doubles as "not before" for a queued job.
            delay = min(2.0 ** (job.attempt - 1), 60.0)
            values = {"status": "queued", "lease_until": now + timedelta(seconds=delay), "error": error}
        else:
            values = {"status": "failed", "lease_until": None, "error": error}
        with write_transaction(self.store.engine) as conn:
            conn.execute(update(jobs).where(jobs.c.id == job.id).values(updated_at=now, **values))

    async def work(self, handler: Handler, give_up: GiveUp, concurrency: int, stop: asyncio.Event) -> None:
        wake = asyncio.Event()
        dispatcher = (asyncio.get_running_loop(), wake)
        _DISPATCHERS.add(dispatcher)
        name = worker_name()
        running: dict[int, Job] = {}
        tasks: set[asyncio.Task[None]] = set()
        heartbeat = asyncio.create_task(self._heartbeat(running, name, stop))
        max_attempts = self.settings.job_max_attempts
        try:
            while not stop.is_set():
                free = concurrency - len(running)
                claimed: list[Job] = []
                if free > 0:
                    busy = {job.case_id for job in running.values()}
                    claimed = await asyncio.to_thread(self.claim, free, busy, name)
                for job in claimed:
                    running[job.id] = job
                    task = asyncio.create_task(self._run(job, handler, give_up, max_attempts, running, wake))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if not claimed:
                    wake.clear()
                    waiters = [asyncio.create_task(wake.wait()), asyncio.create_task(stop.wait())]
                    await asyncio.wait(waiters, timeout=IDLE_POLL_S, return_when=asyncio.FIRST_COMPLETED)
                    for waiter in waiters:
                        waiter.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            heartbeat.cancel()
            _DISPATCHERS.discard(dispatcher)

    async def _run(
        self,
        job: Job,
        handler: Handler,
        give_up: GiveUp,
        max_attempts: int,
        running: dict[int, Job],
        wake: asyncio.Event,
    ) -> None:
        try:
            if job.attempt > max_attempts:
                reason = f"job {job.id} ({job.task}) was claimed {job.attempt - 1} times without finishing"
                await give_up(job, reason)
                await asyncio.to_thread(self.finish, job, reason, retry=False)
                return
            try:
                await handler(job)
            except JobFailedForGood as exc:
                await give_up(job, str(exc))
                await asyncio.to_thread(self.finish, job, str(exc), retry=False)
            except Exception as exc:
                log.exception("job failed", extra={"job_id": job.id, "case_id": job.case_id})
                reason = f"{type(exc).__name__}: {exc}"
                if job.attempt >= max_attempts:
                    await give_up(job, reason)
                await asyncio.to_thread(self.finish, job, reason, retry=job.attempt < max_attempts)
            else:
                await asyncio.to_thread(self.finish, job, None, retry=False)
        finally:
            running.pop(job.id, None)
            wake.set()  # a slot is free: look for more work now

    async def _heartbeat(self, running: dict[int, Job], name: str, stop: asyncio.Event) -> None:
        interval = self.settings.job_lease_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.renew, list(running), name)
            except Exception:
                log.exception("lease renewal failed")
