"""The embedded queue and the worker pieces: leases, one job per case at a time, retries then `failed`, and the
shared model-call rate limit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx2
from service_support import alert_variants, free_port
from soctriage.service.config import Settings
from soctriage.service.intake import accept_alerts
from soctriage.service.queue import Job, JobSpec, SqliteQueue
from soctriage.service.store import Store
from soctriage.service.worker_limits import SharedRateLimit


def open_cases(store: Store, queue: SqliteQueue, count: int) -> list[str]:
    body = b"[" + b",".join(alert_variants(count)) + b"]"
    report = accept_alerts(store, queue, body, "auto", "acme", 1 << 24)
    return [a.case_id for a in report.accepted]


def test_intake_commits_each_case_with_its_job_and_leases_are_reclaimed(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, job_lease_s=0.2)
    with Store.open(settings) as store:
        queue = SqliteQueue(settings, store)
        case_ids = open_cases(store, queue, 3)
        assert queue.depth() == 3
        queue.enqueue_now(store, JobSpec(case_ids[0], "decide", {"x": 1}))
        first = queue.claim(10, set(), "w1")
        # One job per case at a time: the second job of case 0 waits.
        assert sorted(j.case_id for j in first) == sorted(case_ids)
        assert queue.claim(10, set(), "w2") == []
        time.sleep(0.25)  # w1 died: its leases run out
        again = queue.claim(10, set(), "w2")
        assert {j.id for j in again} == {j.id for j in first} and all(j.attempt == 2 for j in again)
        for job in again:
            queue.finish(job, None, retry=False)
        [decide] = queue.claim(10, set(), "w2")
        assert (decide.case_id, decide.task, decide.args) == (case_ids[0], "decide", {"x": 1})


async def test_a_job_that_keeps_failing_marks_its_case_failed(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, job_max_attempts=2, job_lease_s=5)
    with Store.open(settings) as store:
        queue = SqliteQueue(settings, store)
        [case_id] = open_cases(store, queue, 1)
        attempts: list[int] = []
        stop = asyncio.Event()

        async def handler(job: Job) -> None:
            attempts.append(job.attempt)
            raise RuntimeError("model exploded")

        async def give_up(job: Job, reason: str) -> None:
            store.set_status(job.case_id, "failed", "system", reason)
            stop.set()

        await asyncio.wait_for(queue.work(handler, give_up, 2, stop), timeout=10)
        assert attempts == [1, 2]
        case = store.get_case(case_id)
        assert case is not None and case.status == "failed"
        assert "model exploded" in store.entries(case_id)[-1].payload["reason"]


def test_the_model_rate_limit_is_shared_by_every_limiter_on_the_database(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with Store.open(settings) as one, Store.open(settings) as two:
        limits = [SharedRateLimit(one, rate=10), SharedRateLimit(two, rate=10)]
        started = time.monotonic()
        waits = [limits[i % 2].reserve() for i in range(30)]
        elapsed = time.monotonic() - started
    # A burst of 10 passes at once; the next 20 are spaced 0.1 s apart, whichever process asks. Waits count
    # from when each reservation was made, so time spent reserving (a loaded machine) comes off the last one.
    assert waits[:9] == [0.0] * 9
    assert 1.8 <= max(waits) + elapsed <= 2.2 + elapsed
    assert waits == sorted(waits)


async def test_a_worker_counts_the_model_calls_and_tokens_its_job_made(tmp_path: Path) -> None:
    from fakes import ScriptedOpenAI, reply
    from soctriage.service.metrics import REGISTRY
    from soctriage.service.worker import CaseWorker
    from test_graph import TRIAGE, llm_settings, triager, verdict_answer

    def counted(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"model": "fake-model", **labels}) or 0.0

    settings = llm_settings(tmp_path, max_enrich_steps=0)
    script = [
        reply(TRIAGE, prompt_tokens=100, completion_tokens=10),
        reply(verdict_answer("false_positive", confidence=0.95), prompt_tokens=200, completion_tokens=20),
    ]
    before = (counted("soctriage_model_calls_total"), counted("soctriage_model_tokens_total", kind="prompt"))
    with ScriptedOpenAI(script) as fake:
        async with triager(settings, fake) as t:
            queue = SqliteQueue(settings, t.store)
            open_cases(t.store, queue, 1)
            [job] = queue.claim(1, set(), "w1")
            await CaseWorker(t).handle(job)
    assert counted("soctriage_model_calls_total") - before[0] == 2
    assert counted("soctriage_model_tokens_total", kind="prompt") - before[1] == 300


def test_serve_triages_over_http_with_a_model_endpoint_and_keeps_to_the_rate_limit(tmp_path: Path) -> None:
    """The worker's own HTTP client (aiohttp, pooled, rate limited) against a real loopback endpoint."""
    from fakes import FAKE_API_KEY, ScriptedOpenAI, reply
    from service_support import service_env, serving, start, wait_healthy
    from test_graph import TRIAGE, verdict_answer

    cases, rate = 3, 1.0
    fake = ScriptedOpenAI([reply(TRIAGE), reply(verdict_answer("false_positive", confidence=0.95))] * cases)
    arrivals: list[float] = []

    async def timed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            arrivals.append(time.monotonic())
        await fake(scope, receive, send)

    home = tmp_path / "home"
    with serving(timed) as model_url:
        env = service_env(
            home,
            SOCTRIAGE_MODEL="openai:fake-model",
            OPENAI_BASE_URL=f"{model_url}/v1",
            OPENAI_API_KEY=FAKE_API_KEY,
            SOCTRIAGE_MODEL_RATE_LIMIT=str(rate),
            SOCTRIAGE_MAX_ENRICH_STEPS="0",
        )
        port = free_port()
        # One job at a time, so the scripted answers meet the requests in order.
        server = start(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log")
        try:
            wait_healthy(f"http://127.0.0.1:{port}", server)
            body = b"[" + b",".join(alert_variants(cases)) + b"]"
            accepted = httpx2.post(f"http://127.0.0.1:{port}/v1/alerts", content=body).json()["accepted"]
            deadline = time.monotonic() + 60
            with Store.open(Settings(home=home)) as store:
                while not all(store.get_case(a["case_id"]).verdict for a in accepted):  # type: ignore[union-attr]
                    assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
                    time.sleep(0.1)
                verdicts = [store.get_case(a["case_id"]).verdict for a in accepted]  # type: ignore[union-attr]
        finally:
            server.terminate()
            server.wait(timeout=30)
    fake.assert_done()
    assert {v.disposition for v in verdicts if v} == {"false_positive"}
    # A burst of `rate` requests, then one every 1/rate s: the 6 requests are reserved over (6 - 1) / 1 = 5 s.
    # Arrival times also carry each request's own delivery time (the first one opens the connection), so
    # allow a quarter; without the limit the three cases took 0.8 s here.
    assert len(arrivals) == 2 * cases
    assert arrivals[-1] - arrivals[0] >= 0.75 * (2 * cases - rate) / rate
