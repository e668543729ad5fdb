"""Queue workers: each job advances one case's graph through `Triager` (run or resume it, or apply a human
decision). Run in-process by `soctriage serve` or as `soctriage worker` processes on any number of machines.

Nothing here decides anything about a case; it only moves jobs to the graph and records what it could not do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack, suppress
from datetime import datetime

import httpx2
import openai
from soctriage.agents.lifecycle import SYSTEM, Decision, NotDecidable, case_actions, overdue, pending
from soctriage.agents.run import Triager, TriageResult
from soctriage.service import metrics
from soctriage.service.config import Settings
from soctriage.service.domain import FINAL_CASE_STATUSES, utc_now
from soctriage.service.ledger_events import LlmCall, events_of, token_totals
from soctriage.service.ledger_notes import ApprovalExpired
from soctriage.service.queue import Job, JobFailedForGood, JobQueue, JobSpec, open_queue
from soctriage.service.store import Store
from soctriage.service.store.checkpoint import CheckpointRefused, checkpoint_log_path, write_checkpoint
from soctriage.service.store.checkpoint_heads import checkpoint_scopes
from soctriage.service.store.signing import SigningKeyError, load_signing_key
from soctriage.service.worker_limits import SharedRateLimit
from soctriage.tools.retrieval import LazyIndex

log = logging.getLogger("soctriage.worker")

VERDICT_STATES = FINAL_CASE_STATUSES | {"awaiting_approval"}
# How often each worker looks for approval requests past their deadline.
APPROVAL_SWEEP_S = 30.0


class CaseWorker:
    """Handles the jobs of one process with one `Triager` (store, checkpointer, tools, model)."""

    def __init__(self, triager: Triager) -> None:
        self.triager = triager
        self.store = triager.store

    async def handle(self, job: Job) -> None:
        started = time.perf_counter()
        case = await self.store.io(self.store.get_case, job.case_id)
        if case is None:
            raise JobFailedForGood(f"case {job.case_id} does not exist")
        seen = await self.store.io(self.store.head_seq, job.case_id)
        if job.task == "triage":
            result = await self.triager.run_case(job.case_id)
        elif job.task == "grouped":
            result = await self.triager.run_grouped(job.case_id, str(job.args["alert_id"]))
        else:
            result = await self._decide(job)
        # Only this job's model calls, not its whole transcript: they are what the metrics count.
        entries = await self.store.io(self.store.entries, job.case_id, seen + 1, "llm_call")
        by_model: dict[str, list[LlmCall]] = {}
        for call in events_of(entries, LlmCall):
            by_model.setdefault(call.model or call.analyst or "unknown", []).append(call)
        for model, calls in by_model.items():
            used = token_totals(calls)
            metrics.MODEL_CALLS.labels(model).inc(used.calls)
            metrics.MODEL_TOKENS.labels(model, "prompt").inc(used.prompt_tokens)
            metrics.MODEL_TOKENS.labels(model, "completion").inc(used.completion_tokens)
        metrics.JOB_SECONDS.labels(job.task).observe(time.perf_counter() - started)
        metrics.JOBS.labels(job.task, "done").inc()
        if job.task == "triage" and result.status in VERDICT_STATES:
            metrics.TIME_TO_VERDICT.observe((utc_now() - case.created_at).total_seconds())
        log.info(
            "job done",
            extra={"job_id": job.id, "task": job.task, "case_id": job.case_id, "status": result.status},
        )

    async def _decide(self, job: Job) -> TriageResult:
        decision = Decision.model_validate(job.args)
        try:
            return await self.triager.decide(job.case_id, decision)
        except NotDecidable:
            if job.attempt == 1 and decision.actor != SYSTEM:
                # Another decision on this action got there first (two approvers at once): say so in the ledger.
                why = "the action was decided by an earlier decision before this one ran"
                await asyncio.to_thread(self.triager.refuse, job.case_id, decision, why)
        # A retried decision whose first attempt was cut short: finish what it started.
        return await self.triager.run_case(job.case_id)

    async def give_up(self, job: Job, reason: str) -> None:
        """A job that cannot succeed: its case is marked failed (a final state an analyst picks up)."""
        metrics.JOBS.labels(job.task, "failed").inc()
        log.error("job given up", extra={"job_id": job.id, "case_id": job.case_id, "reason": reason})
        case = await asyncio.to_thread(self.store.get_case, job.case_id)
        if case is not None and case.status not in FINAL_CASE_STATUSES:
            await asyncio.to_thread(self.store.set_status, job.case_id, "failed", "system", reason)


def expire_overdue_approvals(store: Store, queue: JobQueue, now: datetime | None = None) -> int:
    """Queue an `expired` decision for every pending approval request past its deadline; returns how many.

    Without this a case whose approver never answered would wait in `awaiting_approval` for ever, its threat
    uncontained and nobody told. The decision runs as a `decide` job like a human's (one job per case at a
    time, crash-safe), the graph records it as `expired` by `system` and the case is escalated. A
    `approval_expired` note marks each request it queued, so later sweeps (any worker's) leave it alone."""
    now = now or utc_now()
    queued = 0
    for case_id in store.case_ids("awaiting_approval"):
        entries = store.entries(case_id)
        swept = {e.action_id for e in events_of(entries, ApprovalExpired)}
        for action in pending(case_actions(entries)):
            if action.id in swept or not overdue(action, now):
                continue
            # The job first, then the note: a crash between them queues it again, and the repeat is a no-op.
            decision = Decision.expiry(action.id, now)
            queue.enqueue_now(store, JobSpec(case_id, "decide", decision.model_dump(mode="json")))
            deadline = action.expires_at.isoformat() if action.expires_at else now.isoformat()
            store.append(case_id, SYSTEM, "note", ApprovalExpired(action_id=action.id, expired_at=deadline))
            queued += 1
    return queued


async def _sweep_expired_approvals(store: Store, queue: JobQueue, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=APPROVAL_SWEEP_S)
        if stop.is_set():
            return
        try:
            expired = await asyncio.to_thread(expire_overdue_approvals, store, queue)
        except Exception:
            log.exception("approval-expiry sweep failed")
            continue
        if expired:
            log.info("approval requests expired", extra={"count": expired})


async def sign_checkpoints(settings: Settings, store: Store, stop: asyncio.Event) -> None:
    """Every `checkpoint_interval_s`, sign a ledger checkpoint of each scope whose case heads moved.

    A refusal (a committed case was cut back, rewritten or deleted) is logged as an error at every interval
    until someone looks: it is the alarm this loop exists for. Workers on one database race harmlessly: one
    stores the checkpoint, the others find nothing new or lose the insert."""
    if settings.checkpoint_interval_s <= 0:
        return
    try:
        key, created = await asyncio.to_thread(load_signing_key, settings, create=True)
    except SigningKeyError as exc:
        log.error("ledger checkpoints are off: %s", exc)
        return
    if created:
        log.warning("created the ledger signing key", extra={"path": str(key.path)})
    log_file = checkpoint_log_path(settings)
    while not stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.checkpoint_interval_s)
        if stop.is_set():
            return
        for scope in await asyncio.to_thread(checkpoint_scopes, store):
            try:
                written = await asyncio.to_thread(
                    write_checkpoint, store, key, tenant=scope, log_file=log_file, only_if_changed=True
                )
            except CheckpointRefused as exc:
                log.error("ledger checkpoint refused: %s", exc)
                continue
            except Exception:
                log.exception("ledger checkpoint failed")
                continue
            if written is not None:
                log.info(
                    "ledger checkpoint signed",
                    extra={
                        "origin": written.origin,
                        "number": written.number,
                        "tree_size": written.tree_size,
                    },
                )


def model_http_client(concurrency: int, limit: SharedRateLimit | None) -> httpx2.AsyncClient:
    """The HTTP client the model layer uses in a worker: the `openai` SDK's aiohttp transport, pooled for the
    worker's concurrency (every connection kept alive), rate limited.

    aiohttp rather than httpx2's own transport: with hundreds of calls in flight, httpx2's pool re-checks every
    idle connection's socket on each request, and that plus its pure-Python HTTP parsing was about a fifth of
    a busy worker's CPU."""
    pool = concurrency * 2
    limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
    hooks = {"request": [limit.before_request]} if limit is not None else {}
    return openai.DefaultAioHttpClient(limits=limits, event_hooks=hooks)


async def run_worker(
    settings: Settings, concurrency: int, stop: asyncio.Event, *, index: LazyIndex | None = None
) -> None:
    """Work the queue until `stop` is set; jobs already running then finish. `index` is the retrieval index of
    the process when it is shared (`serve`'s API and its in-process workers); unset, the worker opens its own."""
    async with AsyncExitStack() as stack:
        http_client: httpx2.AsyncClient | None = None
        if settings.model.startswith("openai:"):
            limit = None
            if settings.model_rate_limit:
                limit_store = stack.enter_context(Store.open(settings))
                limit = SharedRateLimit(limit_store, settings.model_rate_limit)
            http_client = model_http_client(concurrency, limit)
            stack.push_async_callback(http_client.aclose)
        triager = await stack.enter_async_context(Triager(settings, http_client=http_client, index=index))
        # Start loading the similar-case index (Chroma, the embedding model) now, beside the first jobs: it
        # takes a second or more, and the first cases to close would otherwise wait for all of it.
        warm_up = asyncio.create_task(asyncio.to_thread(triager.deps.connectors.retrieval.get))
        stack.push_async_callback(_settled, warm_up)
        queue = open_queue(settings, triager.store)
        worker = CaseWorker(triager)
        log.info("worker started", extra={"concurrency": concurrency, "queue": type(queue).__name__})
        sweep = asyncio.create_task(_sweep_expired_approvals(triager.store, queue, stop))
        checkpoints = asyncio.create_task(sign_checkpoints(settings, triager.store, stop))
        await queue.work(worker.handle, worker.give_up, concurrency, stop)
        await sweep
        await checkpoints
        log.info("worker stopped")


async def _settled(task: asyncio.Task[object]) -> None:
    """Wait for a background task on the way out; its failure was only an optimisation's."""
    try:
        await task
    except Exception:
        log.exception("loading the similar-case index in advance failed")
