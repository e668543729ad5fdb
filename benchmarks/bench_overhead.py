"""Per-alert cost of soctriage's orchestration and persistence against a bare LangGraph program that makes the
same model calls and writes the same number of hash-chained rows.

    python benchmarks/bench_overhead.py [--alerts 200] [--runs 2] [--block 10]

Both talk to bench_service.py's OpenAI-compatible fake on loopback (no simulated latency) through one httpx
transport that adds up the time spent inside model requests. Per alert: wall time minus that ("overhead"), CPU
time of this process (the fake runs in its own), store write transactions, checkpoint writes (the saver's
`put`, `put_writes` and, for soctriage, `prune` calls), and the bytes a finished case leaves in the checkpoint
file (its checkpoints and writes rows). soctriage runs `Triager` one alert after another (bundled samples with
fresh ids, ungrouped, the retrieval index on the hashing embedder); the two take turns, `--block` alerts each.

The baseline is what a lean program would be: a StateGraph of the same nodes (ingest, triage, enrich, verdict,
respond, approval, act, close; respond goes straight to close on a benign verdict, as soctriage's does) run with
`invoke` and LangGraph's `SqliteSaver`, the synchronous OpenAI client, as many model calls per alert as
soctriage made, and as many SHA-256-chained rows per alert as soctriage's ledgers hold, one transaction per node.
Ratios are soctriage / baseline, one line per run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

import httpx2
import openai
from bench_service import free_port, wait_model
from bench_triage import sample_records, unique_alerts
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from soctriage.agents.run import Triager
from soctriage.service.config import Settings
from soctriage.service.domain import Alert
from soctriage.service.ingest import normalize_bytes
from sqlalchemy import event

NODES = ("ingest", "triage", "enrich", "verdict", "respond", "approval", "act", "close")
# The schemas the fake answers in shape for, in the order soctriage asks: assessment, enrichment, verdict.
SCHEMAS = ("TriageAssessment", None, "VerdictDraft")


class ModelClock:
    """Adds up the time spent inside model requests, body read included, for a sync or an async client."""

    def __init__(self) -> None:
        self.spent = 0.0

    def sync(self) -> httpx2.Client:
        inner, clock = httpx2.HTTPTransport(), self

        class Timed(httpx2.BaseTransport):
            def handle_request(self, request: httpx2.Request) -> httpx2.Response:
                began = time.perf_counter()
                response = inner.handle_request(request)
                response.read()
                clock.spent += time.perf_counter() - began
                return response

        return httpx2.Client(transport=Timed())

    def async_(self) -> httpx2.AsyncClient:
        inner, clock = httpx2.AsyncHTTPTransport(), self

        class Timed(httpx2.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
                began = time.perf_counter()
                response = await inner.handle_async_request(request)
                await response.aread()
                clock.spent += time.perf_counter() - began
                return response

        return httpx2.AsyncClient(transport=Timed())


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *_: Any) -> None:
        self.n += 1


def count_write_transactions(engine: Any, counter: Counter) -> None:
    """Count the store's write transactions: on SQLite each begins with BEGIN IMMEDIATE, whether SQLAlchemy's
    `write_transaction` (status and verdict changes) or the ledger append's `driver_transaction` issued it;
    reads begin with a plain BEGIN and are not counted. Traces every connection as it leaves the pool."""

    def trace(statement: str) -> None:
        if statement == "BEGIN IMMEDIATE":
            counter()

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_trace_callback(trace)

    event.listen(engine, "checkout", checkout)


def count_saver_writes(saver: Any, counter: Counter, names: tuple[str, ...]) -> None:
    """Count calls of the saver's checkpoint-writing methods `names` on this instance: the async ones for an
    async graph (soctriage's saver runs its sync methods inside them, which would count twice)."""
    for name in names:
        method = getattr(saver, name)
        if asyncio.iscoroutinefunction(method):

            async def counted(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
                counter()
                return await _method(*args, **kwargs)
        else:

            def counted(*args: Any, _method: Any = method, **kwargs: Any) -> Any:  # type: ignore[misc]
                counter()
                return _method(*args, **kwargs)

        setattr(saver, name, counted)


def checkpoint_bytes(path: Path) -> tuple[int, int]:
    """(bytes of checkpoints and writes rows, number of threads) in a SqliteSaver file."""
    with sqlite3.connect(path) as conn:
        size = conn.execute(
            "SELECT (SELECT coalesce(sum(length(checkpoint) + length(metadata)), 0) FROM checkpoints)"
            " + (SELECT coalesce(sum(length(value)), 0) FROM writes)"
        ).fetchone()[0]
        threads = conn.execute("SELECT count(DISTINCT thread_id) FROM checkpoints").fetchone()[0]
    return int(size), int(threads)


class Tally:
    """What one side spent on the alerts of the measured blocks."""

    def __init__(self, clock: ModelClock) -> None:
        self.clock, self.alerts, self.wall, self.model, self.cpu = clock, 0, 0.0, 0.0, 0.0
        self.transactions, self.checkpoint_writes = Counter(), Counter()

    @contextmanager
    def block(self, alerts: int) -> Iterator[None]:
        model, cpu, began = self.clock.spent, time.process_time(), time.perf_counter()
        yield
        self.wall += time.perf_counter() - began
        self.cpu += time.process_time() - cpu
        self.model += self.clock.spent - model
        self.alerts += alerts

    def per_alert(self, checkpoint_file: Path, **extra: float) -> dict[str, float]:
        size, threads = checkpoint_bytes(checkpoint_file)
        n = self.alerts
        return {
            "overhead_ms": (self.wall - self.model) / n * 1000,
            "cpu_ms": self.cpu / n * 1000,
            "model_ms": self.model / n * 1000,
            "store_transactions": self.transactions.n / n,
            "checkpoint_writes": self.checkpoint_writes.n / n,
            "checkpoint_bytes_per_case": size / threads,
            **{k: v / n for k, v in extra.items()},
        }


# --- the bare LangGraph baseline ---------------------------------------------------------------------------------


def model_calls(url: str) -> int:
    return int(httpx2.get(f"{url}/calls").json()["n"])


class BareState(TypedDict, total=False):
    case_id: str
    alert: dict[str, Any]
    benign: bool


def rows_by_node(rows: int, calls: int) -> dict[str, int]:
    """`rows` spread over the nodes the baseline runs, the model nodes first (they write the most)."""
    ran = [n for n in NODES if n not in ("approval", "act")]
    shares = {node: rows // len(ran) for node in ran}
    for node in ran[: rows % len(ran)]:
        shares[node] += 1
    return shares


def bare_graph(
    saver: SqliteSaver, ledger: sqlite3.Connection, client: openai.OpenAI, calls: int, rows: dict[str, int]
) -> Any:
    heads: dict[str, tuple[int, str]] = {}

    def write(case_id: str, node: str, payload: dict[str, Any]) -> None:
        seq, prev = heads.get(case_id, (0, "0" * 64))
        with ledger:
            for _ in range(rows.get(node, 0)):
                seq += 1
                text = json.dumps({"node": node, **payload}, sort_keys=True, separators=(",", ":"))
                digest = hashlib.sha256(f"{case_id}|{seq}|{node}|{text}|{prev}".encode()).hexdigest()
                ledger.execute(
                    "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?)",
                    (case_id, seq, time.time(), text, prev, digest),
                )
                prev = digest
            ledger.execute("INSERT OR REPLACE INTO heads VALUES (?, ?, ?)", (case_id, seq, prev))
        heads[case_id] = (seq, prev)

    def ask(state: BareState, number: int) -> str:
        if number >= calls:
            return ""
        schema = SCHEMAS[min(number, len(SCHEMAS) - 1)]
        request: dict[str, Any] = {
            "model": "bench",
            "messages": [
                {"role": "system", "content": "You triage EDR alerts."},
                {"role": "user", "content": json.dumps(state["alert"])},
            ],
        }
        if schema:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema, "schema": {}},
            }
        return client.chat.completions.create(**request).choices[0].message.content or ""

    def node(name: str, first_call: int | None) -> Any:
        def run(state: BareState) -> BareState:
            answer = ask(state, first_call) if first_call is not None else ""
            write(state["case_id"], name, {"answer": answer[:200]})
            if name == "verdict":
                return {"benign": '"false_positive"' in answer or calls < 3}
            return {}

        run.__name__ = name
        return run

    graph = StateGraph(BareState)
    model_nodes = {"triage": 0, "enrich": 1, "verdict": 2}
    for name in NODES:
        graph.add_node(name, node(name, model_nodes.get(name)))
    graph.add_edge(START, "ingest")
    for a, b in (("ingest", "triage"), ("triage", "enrich"), ("enrich", "verdict"), ("verdict", "respond")):
        graph.add_edge(a, b)
    graph.add_conditional_edges("respond", lambda s: "close" if s.get("benign") else "approval")
    graph.add_edge("approval", "act")
    graph.add_edge("act", "close")
    graph.add_edge("close", END)
    return graph.compile(checkpointer=saver)


class Baseline:
    def __init__(self, home: Path, url: str, calls: int, rows: int, warm_up: Alert) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home, self.calls, self.rows, self.cases = home, calls, rows, 0
        synchronous = Settings(home=home).sqlite_synchronous
        self.ledger = sqlite3.connect(home / "ledger.db", isolation_level="IMMEDIATE")
        self.ledger.execute("PRAGMA journal_mode = WAL")
        self.ledger.execute(f"PRAGMA synchronous = {synchronous}")
        self.ledger.execute(
            "CREATE TABLE ledger (case_id TEXT, seq INTEGER, ts REAL, payload TEXT, prev_hash TEXT, hash TEXT,"
            " PRIMARY KEY (case_id, seq))"
        )
        self.ledger.execute("CREATE TABLE heads (case_id TEXT PRIMARY KEY, seq INTEGER, hash TEXT)")
        self.conn = sqlite3.connect(home / "checkpoints.db", check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(f"PRAGMA synchronous = {synchronous}")
        saver = SqliteSaver(self.conn)
        self.tally = Tally(ModelClock())
        client = openai.OpenAI(
            base_url=f"{url}/v1", api_key="bench", http_client=self.tally.clock.sync(), max_retries=0
        )
        self.graph = bare_graph(saver, self.ledger, client, calls, rows_by_node(rows, calls))
        self.triage_all([warm_up])
        self.ledger.set_trace_callback(
            lambda sql: self.tally.transactions() if sql.startswith("COMMIT") else None
        )
        count_saver_writes(saver, self.tally.checkpoint_writes, ("put", "put_writes"))

    def triage_all(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.cases += 1
            case_id = f"case-{self.cases}"
            self.graph.invoke({"case_id": case_id, "alert": alert.model_dump(mode="json")}, _thread(case_id))

    def report(self) -> dict[str, float]:
        self.ledger.close()
        self.conn.close()
        n = self.tally.alerts
        return self.tally.per_alert(
            self.home / "checkpoints.db", model_calls=self.calls * n, rows=self.rows * n
        )


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 2) if isinstance(value, float) else value


def _thread(case_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": case_id}}


# --- both ---------------------------------------------------------------------------------------------------------


async def one_run(url: str, count: int, run: int, block: int) -> dict[str, Any]:
    """soctriage and the baseline take turns, `block` alerts at a time, so both see the same machine load."""
    calibration = len([a for name, data in sample_records() for a in normalize_bytes(data, name)])
    alerts = unique_alerts(count + calibration, tag=f"overhead{run}-")
    with tempfile.TemporaryDirectory(prefix="soctriage-overhead-") as tmp:
        home = Path(tmp) / "soctriage"
        settings = Settings(
            home=home,
            model="openai:bench",
            openai_base_url=f"{url}/v1",
            openai_api_key="bench",
            embedder="hashing",
        )
        mine = Tally(ModelClock())
        async with Triager(settings, http_client=mine.clock.async_(), group=False) as triager:
            # Warm-up, and what the baseline copies: model calls and ledger rows per alert, over one alert of each
            # bundled sample.
            before = model_calls(url)
            warm = [(await triager.triage(alert)).case_id for alert in alerts[:calibration]]
            calls = round((model_calls(url) - before) / calibration)
            rows = round(sum(triager.store.head_seq(case_id) for case_id in warm) / calibration)
            bare = Baseline(Path(tmp) / "baseline", url, calls, rows, warm_up=alerts[0])
            count_write_transactions(triager.store.engine, mine.transactions)
            count_saver_writes(
                triager.graph.checkpointer, mine.checkpoint_writes, ("aput", "aput_writes", "aprune")
            )
            before, cases = model_calls(url), []
            for first in range(calibration, len(alerts), block):
                chunk = alerts[first : first + block]
                with mine.block(len(chunk)):
                    cases += [(await triager.triage(alert)).case_id for alert in chunk]
                with bare.tally.block(len(chunk)):
                    bare.triage_all(chunk)
            made = model_calls(url) - before - calls * len(cases)
            stored = sum(triager.store.head_seq(case_id) for case_id in cases)
        theirs = bare.report()
        ours = mine.per_alert(home / "checkpoints.db", model_calls=made, rows=stored)
    ratios = {
        "overhead": ours["overhead_ms"] / theirs["overhead_ms"],
        "cpu": ours["cpu_ms"] / theirs["cpu_ms"],
    }
    return {"run": run, "soctriage": ours, "baseline": theirs, "ratio": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=200, help="alerts per run (after one warm-up alert)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--block", type=int, default=10, help="alerts each side triages in its turn")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = Path(__file__).with_name("bench_service.py")
    model = subprocess.Popen(
        [sys.executable, str(service), "--fake-model", "--port", str(port), "--latency", "0"]
    )
    try:
        wait_model(url)
        for run in range(1, args.runs + 1):
            outcome = asyncio.run(one_run(url, args.alerts, run, args.block))
            print(json.dumps(_rounded(outcome)), flush=True)
    finally:
        model.terminate()
        model.wait(timeout=30)


if __name__ == "__main__":
    main()
