"""Throughput of normalize and of the triage graph on the embedded default (builtin model, SQLite).

    python benchmarks/bench_triage.py [--alerts 1000] [--normalize 20000] [--database-url URL]

Reports normalized alerts/s; triage alerts/s end to end, one alert after another and with the default
concurrency of `soctriage triage` (SOCTRIAGE_WORKER_CONCURRENCY runs at once); graph overhead per alert
excluding model time (p50/p95: wall time of a triage minus the time spent inside the analyst, measured one at
a time); and, with the scripted OpenAI-compatible fake, model calls and tokens per alert.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from soctriage.agents.run import Triager
from soctriage.service.config import Settings
from soctriage.service.domain import Alert
from soctriage.service.ingest import normalize_bytes

SAMPLES = resources.files("soctriage.service").joinpath("samples")


def sample_records() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(SAMPLES.iterdir()) if p.is_file()]


def bench_normalize(count: int) -> float:
    records = sample_records()
    batch = [records[i % len(records)] for i in range(count)]
    start = time.perf_counter()
    done = sum(1 for name, data in batch for item in normalize_bytes(data, name) if isinstance(item, Alert))
    return done / (time.perf_counter() - start)


# Alert ids unique to this run: a PostgreSQL database outlives the run, and an id seen before is a duplicate
# (deduplicated, not triaged), which would time the dedupe path instead of triage.
RUN = uuid.uuid4().hex[:8]


def unique_alerts(count: int, tag: str = "bench") -> list[Alert]:
    """`count` distinct alerts (a fresh vendor id each, suffixed `-{tag}{run}-N`); triaged ungrouped, every one
    opens its own case."""
    base = [a for name, data in sample_records() for a in normalize_bytes(data, name) if isinstance(a, Alert)]
    return [
        base[i % len(base)].model_copy(update={"id": f"{base[i % len(base)].id}-{tag}{RUN}-{i}"})
        for i in range(count)
    ]


class TimedAnalyst:
    """Wraps an analyst and adds up the time spent inside it (the "model time" excluded from overhead)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.spent = inner, inner.name, 0.0

    def __getattr__(self, method: str) -> Any:
        target = getattr(self.inner, method)

        async def timed(task: Any) -> Any:
            start = time.perf_counter()
            try:
                return await target(task)
            finally:
                self.spent += time.perf_counter() - start

        return timed


async def bench_graph(settings: Settings, count: int) -> dict[str, float]:
    alerts = unique_alerts(count)
    overheads, walls = [], []
    async with Triager(settings, group=False) as triager:
        timed = TimedAnalyst(triager.deps.analyst)
        object.__setattr__(triager.deps, "analyst", timed)
        object.__setattr__(triager.deps, "builtin", timed)
        await triager.triage(alerts[0])  # warm-up: imports, data files, prepared statements
        start = time.perf_counter()
        for alert in alerts[1:]:
            timed.spent = 0.0
            began = time.perf_counter()
            await triager.triage(alert)
            wall = time.perf_counter() - began
            walls.append(wall)
            overheads.append(wall - timed.spent)
        total = time.perf_counter() - start
    overheads.sort()
    return {
        "alerts": len(walls),
        "alerts_per_s": len(walls) / total,
        "wall_ms_p50": statistics.median(walls) * 1000,
        "overhead_ms_p50": statistics.median(overheads) * 1000,
        "overhead_ms_p95": overheads[int(0.95 * (len(overheads) - 1))] * 1000,
    }


async def bench_concurrent(settings: Settings, count: int, concurrency: int) -> dict[str, float]:
    """End-to-end throughput as `soctriage triage --concurrency N` runs it: overlapping graph runs."""
    alerts = unique_alerts(count, tag="concurrent")
    async with Triager(settings, group=False) as triager:
        await triager.triage(alerts[0])  # warm-up, as in bench_graph
        start = time.perf_counter()
        done = sum([1 async for _ in triager.triage_many(alerts[1:], concurrency=concurrency)])
        total = time.perf_counter() - start
    return {"alerts": done, "concurrency": concurrency, "alerts_per_s": done / total}


async def bench_fake_model(settings: Settings, count: int) -> dict[str, float]:
    """Model calls and tokens per alert when an OpenAI-compatible model drives the graph (scripted fake)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import httpx2
    from fakes import FAKE_API_KEY, ScriptedOpenAI, reply, tool_call_reply

    triage = {
        "category": "execution",
        "initial_severity": 4,
        "hypotheses": ["h"],
        "enrichments": ["process_lineage"],
        "rationale": "r",
    }
    verdict = {
        "disposition": "true_positive",
        "severity_id": 4,
        "confidence": 0.8,
        "techniques": [],
        "summary": "s",
        "rationale": "r",
        "evidence": [1],
        "recommended_actions": [],
    }
    per_alert = [
        reply(triage, prompt_tokens=900, completion_tokens=80),
        tool_call_reply(("process_lineage", {})),
        reply("done", prompt_tokens=1200, completion_tokens=5),
        reply(verdict, prompt_tokens=1500, completion_tokens=150),
        tool_call_reply(("create_ticket", {"title": "t", "severity": "high", "summary": "s"})),
    ]
    alerts = unique_alerts(count)
    fake = ScriptedOpenAI(per_alert * count)
    llm = Settings(
        home=settings.home,
        model="openai:bench",
        openai_base_url="http://fake/v1",
        openai_api_key=FAKE_API_KEY,
    )
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake))
    calls = tokens = 0
    async with Triager(llm, http_client=client, group=False) as triager:
        for alert in alerts:
            result = await triager.triage(alert)
            for entry in triager.store.entries(result.case_id):
                if entry.kind == "llm_call":
                    calls += 1
                    tokens += entry.payload.get("total_tokens", 0)
    fake.assert_done()
    return {"alerts": count, "model_calls_per_alert": calls / count, "tokens_per_alert": tokens / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=1000, help="alerts through the graph")
    parser.add_argument("--normalize", type=int, default=20000, help="records to normalize")
    parser.add_argument(
        "--fake-model-alerts", type=int, default=50, help="alerts through the scripted fake model"
    )
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL URL; default: SQLite in a temp folder"
    )
    args = parser.parse_args()
    report: dict[str, Any] = {"normalize_alerts_per_s": round(bench_normalize(args.normalize))}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", database_url=args.database_url)
        report["backend"] = "postgresql" if args.database_url else "sqlite"
        report["triage_builtin"] = asyncio.run(bench_graph(settings, args.alerts))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", database_url=args.database_url)
        report["triage_builtin_concurrent"] = asyncio.run(
            bench_concurrent(settings, args.alerts, settings.worker_concurrency)
        )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", database_url=None)
        report["triage_scripted_model"] = asyncio.run(bench_fake_model(settings, args.fake_model_alerts))
    print(json.dumps(report, indent=2, default=lambda v: round(v, 2)))


if __name__ == "__main__":
    main()
