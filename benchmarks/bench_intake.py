"""Intake of bad records: one POST /v1/alerts body of 20,000 malformed JSONL records (about 250 KB), as a noisy
or hostile sender would send it, through the in-process API on SQLite (and PostgreSQL with --database-url).

    python benchmarks/bench_intake.py [--database-url URL] [--records N] [--runs N]

Every record is rejected with its line and kept in quarantine; the figure is records per second end to end
(parse, reject, quarantine, the 422 answer). Before the quarantine took one transaction per body, this body
took 29 s. The database named by the URL gets the store's tables and the quarantined rows: use a scratch one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from soctriage.service.api.app import create_app
from soctriage.service.config import Settings


def measure(settings: Settings, records: int, runs: int) -> list[float]:
    body = b"".join(b'{"bad": %d\n' % n for n in range(records))
    seconds = []
    with TestClient(create_app(settings, auth_enabled=False)) as client:
        for _ in range(runs):
            started = time.perf_counter()
            response = client.post("/v1/alerts", content=body)
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 422 and len(response.json()["rejected"]) == records
    print(f"  body of {len(body) / 1024:.0f} KB, {records:,} bad records")
    return seconds


def report(label: str, records: int, seconds: list[float]) -> None:
    rates = ", ".join(f"{records / s:,.0f}/s ({s:.2f} s)" for s in seconds)
    print(f"{label}: {rates}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="also measure this (scratch) PostgreSQL database")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sqlite = Settings(home=Path(folder), database_url=None)
        report("SQLite", args.records, measure(sqlite, args.records, args.runs))
        if args.database_url:
            pg = Settings(home=Path(folder), database_url=args.database_url)
            report("PostgreSQL", args.records, measure(pg, args.records, args.runs))


if __name__ == "__main__":
    main()
