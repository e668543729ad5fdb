"""Alert storms: N alerts from K incidents plus singletons, through `Triager.triage_many` (what `soctriage
triage` runs) with an OpenAI-compatible fake model on loopback that sleeps --latency seconds per call.

    python benchmarks/bench_storm.py [--incidents 10] [--alerts 1000] [--singletons 20] [--latency 0.2]
                                     [--concurrency 50] [--seed 1]

Each incident is one host and one account hit by three alert types (bundled samples with the incident's own
host, account, file hash and domain, which the types share), spread over 30 minutes of alert time, a fifth of them on a second host.
Singletons are alerts of their own. The same alerts run twice, each on a fresh SQLite store: grouped (the
shipped policy) and one case per alert. Reports model calls in both runs, alerts lost (an alert with no result
or not stored), and for each incident whether its case's verdict is at least as strong as the verdict its
first alert got alone (from the one-case-per-alert run).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2
from bench_service import free_port, wait_model
from soctriage.agents.run import Triager
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, Device, User
from soctriage.service.ingest import normalize_bytes

# The fake calls an alert malicious when its request names one of these (the malicious samples' programs).
MALICIOUS_WORDS = ("lsass", "vssadmin", "certutil", "encodedcommand")
STRENGTH = {"true_positive": 3, "inconclusive": 2, "benign_true_positive": 1, "false_positive": 1, None: 0}
SPREAD = timedelta(minutes=30)


def samples() -> list[Alert]:
    folder = resources.files("soctriage.service").joinpath("samples")
    found = []
    for path in sorted(p for p in folder.iterdir() if p.name.endswith(".json")):
        found += [a for a in normalize_bytes(path.read_bytes(), path.name) if isinstance(a, Alert)]
    return found


def as_incident(base: Alert, number: int, tag: str, host: str, account: str, at: datetime) -> Alert:
    """`base` as one alert of incident `tag`: its host, account and indicators (one dropped file, one domain
    per incident), its own vendor id."""
    indicator = hashlib.sha256(tag.encode()).hexdigest()
    changes: dict[str, Any] = {
        "id": f"{base.id}-{tag}-{number}",
        "time": at,
        "device": (base.device or Device()).model_copy(update={"hostname": host, "ip": None}),
        "user": User(name=account, domain="CORP"),
        "observables": (),
    }
    if base.file is not None:
        changes["file"] = base.file.model_copy(update={"sha256": indicator})
    if base.network is not None:
        changes["network"] = base.network.model_copy(
            update={"domain": f"{tag}.example", "url": None, "dst_ip": None}
        )
    return base.model_copy(update=changes)


def storm(incidents: int, alerts: int, singletons: int, seed: int) -> tuple[list[Alert], dict[str, str]]:
    """The alerts in arrival (alert time) order, and each alert's incident (`solo-N` for a singleton)."""
    rng = random.Random(seed)
    bases = samples()
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    made: list[tuple[Alert, str]] = []
    for k in range(incidents):
        tag = f"inc{k}"
        types = [bases[(k + j) % len(bases)] for j in range(3)]
        for n in range(alerts // incidents):
            host = f"HOST-{k}-B" if rng.random() < 0.2 else f"HOST-{k}"
            at = start + timedelta(seconds=rng.uniform(0, SPREAD.total_seconds()))
            made.append((as_incident(rng.choice(types), n, tag, host, f"user{k}", at), tag))
    for n in range(singletons):
        tag = f"solo-{n}"
        at = start + timedelta(seconds=rng.uniform(0, SPREAD.total_seconds()))
        made.append((as_incident(rng.choice(bases), 0, tag, f"SOLO-{n}", f"solo{n}", at), tag))
    made.sort(key=lambda pair: pair[0].time)
    return [a for a, _ in made], {a.id: tag for a, tag in made}


async def triage_all(
    settings: Settings, alerts: list[Alert], concurrency: int, group: bool
) -> dict[str, Any]:
    started = time.perf_counter()
    results = {}
    async with httpx2.AsyncClient() as client, Triager(settings, http_client=client, group=group) as triager:
        async for result in triager.triage_many(alerts, concurrency=concurrency):
            results[result.alert_id] = result
        stored = sum(triager.store.get_alert(a.id, settings.tenant) is not None for a in alerts)
        cases = {r.case_id for r in results.values()}
        verdicts = {case_id: triager.store.get_case(case_id) for case_id in cases}
        verified = triager.store.verify().ok
    return {
        "wall_s": time.perf_counter() - started,
        "results": results,
        "stored": stored,
        "cases": verdicts,
        "verified": verified,
    }


def model_calls(url: str) -> int:
    return int(httpx2.get(f"{url}/calls").json()["n"])


def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    alerts, incident_of = storm(args.incidents, args.alerts, args.singletons, args.seed)
    runs = {}
    for label, group in (("grouped", True), ("one_case_per_alert", False)):
        with tempfile.TemporaryDirectory(prefix="soctriage-storm-") as tmp:
            settings = Settings(
                home=Path(tmp) / "home",
                model="openai:bench",
                openai_base_url=f"{url}/v1",
                openai_api_key="bench",
                embedder="hashing",
            )
            before = model_calls(url)
            outcome = asyncio.run(triage_all(settings, alerts, args.concurrency, group))
            outcome["model_calls"] = model_calls(url) - before
            runs[label] = outcome
    grouped, alone = runs["grouped"], runs["one_case_per_alert"]
    first_of: dict[str, str] = {}
    for alert in alerts:
        first_of.setdefault(incident_of[alert.id], alert.id)
    weaker = []
    for tag, first in first_of.items():
        case = grouped["cases"][grouped["results"][first].case_id]
        mine = case.verdict.disposition if case and case.verdict else None
        if STRENGTH[mine] < STRENGTH[alone["results"][first].disposition]:
            weaker.append(tag)
    return {
        "alerts": len(alerts),
        "incidents": args.incidents,
        "singletons": args.singletons,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "cases_grouped": len(grouped["cases"]),
        "model_calls_grouped": grouped["model_calls"],
        "model_calls_one_case_per_alert": alone["model_calls"],
        "model_call_share": round(grouped["model_calls"] / alone["model_calls"], 3),
        "alerts_lost": len(alerts) - min(len(grouped["results"]), grouped["stored"]),
        "incidents_weaker_than_first_alert_alone": weaker,
        "ledgers_verify": grouped["verified"] and alone["verified"],
        "wall_s_grouped": round(grouped["wall_s"], 1),
        "wall_s_one_case_per_alert": round(alone["wall_s"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=10)
    parser.add_argument("--alerts", type=int, default=1000, help="alerts of the incidents (singletons extra)")
    parser.add_argument("--singletons", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.2, help="simulated seconds per model call")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = Path(__file__).with_name("bench_service.py")
    words = ",".join(MALICIOUS_WORDS)
    fake = [sys.executable, str(service), "--fake-model", "--port", str(port), "--latency", str(args.latency)]
    model = subprocess.Popen([*fake, "--tp-words", words])
    try:
        wait_model(url)
        print(json.dumps(run(args, url), indent=2))
    finally:
        model.terminate()
        model.wait(timeout=30)


if __name__ == "__main__":
    main()
