"""Peak memory of `soctriage triage` over a file of N alerts, as a user runs it (a fresh process and store).

    python benchmarks/bench_rss.py [--alerts 2000] [--grouped] [--database-url URL] [--embedder minilm|host]

Writes N distinct alerts (the bundled samples with numbered vendor ids) to one JSONL file and runs
`soctriage triage FILE --json` on a fresh SOCTRIAGE_HOME with the builtin model. By default grouping is off
(every alert opens and runs its own case, the heavier path); `--grouped` uses the shipped policy. Reports the
child's peak RSS (`ru_maxrss`), its wall and CPU time, and cases triaged.

`--embedder host` first starts `soctriage serve --workers 0` (MiniLM, loopback) and triages with
SOCTRIAGE_EMBEDDER=host, as a host's worker processes would; it also reports the server's peak RSS and the
latency of one query embedded through the server against the same model loaded in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_service import alert_bodies, free_port, ungrouped_policy, wait_healthy

SOCTRIAGE = str(Path(sys.executable).with_name("soctriage"))
QUERIES = 200


def run(count: int, grouped: bool, database_url: str | None, embedder: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        alerts = folder / "alerts.jsonl"
        alerts.write_text("".join(json.dumps(body) + "\n" for body in alert_bodies(count)))
        env = {**os.environ, "SOCTRIAGE_HOME": str(folder / "home")}
        if not grouped:
            env["SOCTRIAGE_POLICY_PATH"] = str(ungrouped_policy(folder))
        if database_url:
            env["SOCTRIAGE_DATABASE_URL"] = database_url
        server = None
        if embedder == "host":
            port = free_port()
            server = subprocess.Popen(
                [SOCTRIAGE, "serve", "--workers", "0", "--port", str(port)],
                env={**env, "SOCTRIAGE_HOME": str(folder / "server"), "SOCTRIAGE_EMBEDDER": "minilm"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            env.update(SOCTRIAGE_EMBEDDER="host", SOCTRIAGE_EMBEDDINGS_URL=f"http://127.0.0.1:{port}/v1")
        else:
            env["SOCTRIAGE_EMBEDDER"] = embedder
        try:
            if server is not None:
                wait_healthy(env["SOCTRIAGE_EMBEDDINGS_URL"].removesuffix("/v1"))
            report = _triage(alerts, env)
            if server is not None:
                report |= _query_latency(env["SOCTRIAGE_EMBEDDINGS_URL"])
        finally:
            if server is not None:
                server.terminate()
                # wait4: this child's own peak, apart from the triage's.
                report["server_peak_rss_mb"] = os.wait4(server.pid, 0)[2].ru_maxrss / 1024
                server.returncode = 0
    return {"alerts": count, **report}


def _triage(alerts: Path, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        child = subprocess.Popen(
            [SOCTRIAGE, "triage", str(alerts), "--json"], env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        if child.returncode not in (0, 1):
            raise SystemExit(f"triage exited {child.returncode}: {err.read()[-2000:]}")
        cases = {json.loads(line)["case_id"] for line in out.read().splitlines() if line.startswith("{")}
    return {
        "cases": len(cases),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def _query_latency(url: str) -> dict[str, float]:
    """One alert-sized query at a time, each new to the server's cache: through the server, and in-process."""
    from soctriage.tools.retrieval_embed import MINILM_TOKENIZER, HostEmbedder, MiniLMEmbedder

    texts = [body_text(n) for n in range(QUERIES)]
    report = {}
    for label, embed in (
        ("host", HostEmbedder(url, None).embed_query),
        ("local", MiniLMEmbedder(MINILM_TOKENIZER).embed_query),
    ):
        embed("warm-up")
        timings = _timed(embed, texts)
        report[f"query_ms_p50_{label}"] = statistics.median(timings)
        report[f"query_ms_p95_{label}"] = statistics.quantiles(timings, n=20)[-1]
    return report


def body_text(number: int) -> str:
    return (
        f"Suspicious PowerShell execution | powershell.exe -nop -w hidden -enc SQBFAFgA{number} | parent"
        f" winword.exe | host WS{number:04d} | user alice{number}"
    )


def _timed(embed: Callable[[str], object], texts: list[str]) -> list[float]:
    timings = []
    for text in texts:
        began = time.perf_counter()
        embed(text)
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--grouped", action="store_true", help="the shipped policy (grouping on)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL; default: SQLite")
    parser.add_argument(
        "--embedder",
        choices=["minilm", "host", "hashing"],
        default="minilm",
        help="host: embed through a `soctriage serve` started for the run",
    )
    args = parser.parse_args()
    report = run(args.alerts, args.grouped, args.database_url, args.embedder)
    print(json.dumps(report, indent=2, default=lambda v: round(v, 1)))


if __name__ == "__main__":
    main()
