"""Load benchmark of the service: 5,000 alerts posted over HTTP, triaged by a model whose latency is simulated.

    python benchmarks/bench_service.py [--alerts 5000] [--latency 1.0] [--concurrency 100] [--pg URL]

Runs a local OpenAI-compatible fake (every call sleeps --latency seconds, then answers in the shape the graph
asked for: a triage assessment, "enough evidence" for the enrichment loop, a false-positive verdict), then:
  1. SQLite, one process: `soctriage serve --workers C`;
  2. PostgreSQL (with --pg or SOCTRIAGE_BENCH_PG_URL): `soctriage serve --workers 0` + two `soctriage worker`
     processes with C/2 each.
Reports intake rate (accepted alerts/s), time to the last verdict, p50/p95 time-to-verdict and wall time against
the ideal (model calls x latency / concurrency). Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2
from fastapi import FastAPI, Request

SOCTRIAGE = [sys.executable, "-m", "soctriage.service.cli"]
BATCH = 50  # alerts per POST (a JSON array)
VERDICT_STATES = {"contained", "closed", "escalated", "failed", "awaiting_approval"}


# --- the latency-simulating model -------------------------------------------------------------------------------


def fake_model_app(latency_s: float, true_positive_words: tuple[str, ...] = ()) -> FastAPI:
    """The model: every verdict false positive, except true positive (high) where the request names one of
    `true_positive_words` (bench_storm's malicious alert types)."""
    app = FastAPI()
    calls = {"n": 0}

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict[str, Any]:
        body = await request.json()
        calls["n"] += 1
        await asyncio.sleep(latency_s)
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("name")
        said = json.dumps(body.get("messages", [])).lower()
        malicious = any(word in said for word in true_positive_words)
        if schema == "TriageAssessment":
            content = {
                "category": "other",
                "initial_severity": 2,
                "hypotheses": ["benchmark"],
                "enrichments": [],
                "rationale": "simulated",
            }
        elif schema == "VerdictDraft":
            content = {
                "disposition": "true_positive" if malicious else "false_positive",
                "severity_id": 4 if malicious else 1,
                "confidence": 0.95,
                "techniques": [],
                "summary": "simulated verdict",
                "rationale": "simulated",
                "evidence": [1],
                "recommended_actions": [],
            }
        else:
            content = "enough evidence"
        text = content if isinstance(content, str) else json.dumps(content)
        return {
            "id": f"chatcmpl-bench-{calls['n']}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "bench"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 500, "completion_tokens": 50, "total_tokens": 550},
        }

    @app.get("/calls")
    async def count() -> dict[str, int]:
        return calls

    return app


# --- helpers --------------------------------------------------------------------------------------------------


def wait_model(url: str, timeout_s: float = 30) -> None:
    """Until the fake model answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx2.get(f"{url}/calls", timeout=1)
            return
        except httpx2.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ungrouped_policy(folder: Path) -> Path:
    """The shipped policy with grouping off, written into `folder`."""
    from soctriage.tools.grouping import GroupingPolicy
    from soctriage.tools.policy import load_policy

    path = folder / "policy-ungrouped.json"
    path.write_text(
        load_policy().model_copy(update={"grouping": GroupingPolicy(enabled=False)}).model_dump_json()
    )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alert_bodies(count: int) -> list[dict[str, Any]]:
    """`count` distinct alerts: the bundled samples with numbered vendor alert ids."""
    from soctriage.service.domain import Alert
    from soctriage.service.ingest import normalize_bytes

    folder = resources.files("soctriage.service").joinpath("samples")
    bases = []
    for path in sorted(p for p in folder.iterdir() if p.name.endswith(".json")):
        data = path.read_bytes()
        [alert] = [a for a in normalize_bytes(data, path.name) if isinstance(a, Alert)]
        bases.append((data.decode(), alert.source.vendor_alert_id or ""))
    out = []
    for number in range(count):
        text, vendor_id = bases[number % len(bases)]
        out.append(json.loads(text.replace(vendor_id, f"{vendor_id}-bench{number}")))
    return out


def wait_healthy(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


async def post_all(base: str, alerts: list[dict[str, Any]], connections: int = 8) -> tuple[int, float]:
    batches = [alerts[i : i + BATCH] for i in range(0, len(alerts), BATCH)]
    accepted = 0
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def sender(client: httpx2.AsyncClient) -> None:
        nonlocal accepted
        while not queue.empty():
            batch = queue.get_nowait()
            response = await client.post(f"{base}/v1/alerts", json=batch)
            response.raise_for_status()
            accepted += len(response.json()["accepted"])

    started = time.perf_counter()
    async with httpx2.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(sender(client) for _ in range(connections)))
    return accepted, time.perf_counter() - started


def wait_verdicts(env: dict[str, str], total: int, timeout_s: float) -> list[float]:
    """Wait until every case is in a verdict state; returns each case's time-to-verdict (s)."""
    from soctriage.service.config import Settings
    from soctriage.service.store import Store
    from soctriage.service.store.schema import cases
    from sqlalchemy import func, select

    settings = Settings(
        home=Path(env["SOCTRIAGE_HOME"]), database_url=env.get("SOCTRIAGE_DATABASE_URL") or None
    )
    deadline = time.monotonic() + timeout_s
    counting = select(func.count()).where(cases.c.status.in_(VERDICT_STATES))
    with Store.open(settings) as store:
        while time.monotonic() < deadline:
            with store.engine.connect() as conn:
                if conn.execute(counting).scalar_one() >= total:
                    break
            time.sleep(1)
        done = [c for c in store.list_cases(limit=total + 10) if c.status in VERDICT_STATES]
    return [
        (min(t for s, t in c.status_times.items() if s in VERDICT_STATES) - c.created_at).total_seconds()
        for c in done
    ]


def run(
    label: str, env: dict[str, str], commands: list[list[str]], alerts: list[dict[str, Any]], args: Any
) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    folder = Path(env["SOCTRIAGE_HOME"])
    folder.mkdir(parents=True, exist_ok=True)
    procs = []
    for number, command in enumerate(commands):
        command = [c.replace("{port}", str(port)) for c in command]
        log = (folder / f"proc{number}.log").open("wb")
        procs.append(subprocess.Popen([*SOCTRIAGE, *command], env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        wait_healthy(base)
        time.sleep(1)  # let the workers connect
        calls_before = httpx2.get(f"{args.model_url}/calls").json()["n"]
        started = time.perf_counter()
        accepted, intake_s = asyncio.run(post_all(base, alerts))
        times = wait_verdicts(env, accepted, timeout_s=args.timeout)
        wall = time.perf_counter() - started
        calls = httpx2.get(f"{args.model_url}/calls").json()["n"] - calls_before
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    ideal = calls * args.latency / args.concurrency
    quantiles = statistics.quantiles(times, n=100) if len(times) > 1 else [0.0] * 99
    return {
        "run": label,
        "alerts": len(alerts),
        "accepted": accepted,
        "verdicts": len(times),
        "intake_s": round(intake_s, 2),
        "accepted_per_s": round(accepted / intake_s, 1),
        "time_to_last_verdict_s": round(wall, 1),
        "ttv_p50_s": round(quantiles[49], 1),
        "ttv_p95_s": round(quantiles[94], 1),
        "model_calls": calls,
        "ideal_s": round(ideal, 1),
        "wall_over_ideal": round(wall / ideal, 2) if ideal else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=1.0, help="simulated seconds per model call")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=100,
        help="graph runs at once, over all workers (the default suits two cores: see the README)",
    )
    parser.add_argument(
        "--pg", default=os.environ.get("SOCTRIAGE_BENCH_PG_URL"), help="PostgreSQL URL (empty DB)"
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--fake-model", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tp-words", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_model:
        import uvicorn

        words = tuple(w for w in args.tp_words.split(",") if w)
        uvicorn.run(
            fake_model_app(args.latency, words), host="127.0.0.1", port=args.port, log_level="warning"
        )
        return

    model_port = free_port()
    args.model_url = f"http://127.0.0.1:{model_port}"
    model = subprocess.Popen(
        [sys.executable, __file__, "--fake-model", "--port", str(model_port), "--latency", str(args.latency)]
    )
    results = []
    try:
        wait_model(args.model_url)
        alerts = alert_bodies(args.alerts)
        with tempfile.TemporaryDirectory(prefix="soctriage-bench-") as tmp:
            common = {k: v for k, v in os.environ.items() if not k.startswith(("SOCTRIAGE_", "OPENAI_"))} | {
                "SOCTRIAGE_MODEL": "openai:bench",
                "OPENAI_BASE_URL": f"{args.model_url}/v1",
                "OPENAI_API_KEY": "bench",
                "SOCTRIAGE_LOG_FORMAT": "json",
                # Numbered copies of eight samples are eight incidents to the grouping rules: this measures
                # independent alerts, one case each (bench_storm.py measures storms).
                "SOCTRIAGE_POLICY_PATH": str(ungrouped_policy(Path(tmp))),
            }
            if not args.skip_sqlite:
                env = common | {
                    "SOCTRIAGE_HOME": f"{tmp}/sqlite",
                    "SOCTRIAGE_WORKER_CONCURRENCY": str(args.concurrency),
                }
                results.append(run("sqlite, 1 process", env, [["serve", "--port", "{port}"]], alerts, args))
                print(json.dumps(results[-1]), flush=True)
            if args.pg:
                env = common | {
                    "SOCTRIAGE_HOME": f"{tmp}/pg",
                    "SOCTRIAGE_DATABASE_URL": args.pg,
                    "SOCTRIAGE_WORKER_CONCURRENCY": str(args.concurrency // 2),
                }
                commands = [["serve", "--port", "{port}", "--workers", "0"], ["worker"], ["worker"]]
                results.append(run("postgresql, API + 2 workers", env, commands, alerts, args))
                print(json.dumps(results[-1]), flush=True)
    finally:
        model.terminate()
        model.wait(timeout=10)
    print()
    print(
        "| run | accepted/s | last verdict (s) | TTV p50 (s) | TTV p95 (s) | model calls | ideal (s) | wall/ideal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['run']} | {r['accepted_per_s']} | {r['time_to_last_verdict_s']} | {r['ttv_p50_s']} |"
            f" {r['ttv_p95_s']} | {r['model_calls']} | {r['ideal_s']} | {r['wall_over_ideal']} |"
        )


if __name__ == "__main__":
    main()
