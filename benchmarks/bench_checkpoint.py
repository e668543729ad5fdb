"""Signed ledger checkpoints over a large store: 100,000 cases / 3,000,000 entries by default.

    python benchmarks/bench_checkpoint.py [--database-url URL] [--cases N] [--skip-sqlite]

Builds the same chained ledgers as bench_report.py, then times the commands an operator and an auditor run,
end to end as processes (`soctriage …`, imports included):
- `ledger checkpoint` over every case (the first one commits a leaf per case), then again after 1% of the
  cases moved (a worker's periodic checkpoint);
- `ledger verify --all`, then the same with `--checkpoint` (the cost of checking every committed head);
- `report evidence` before any checkpoint, and after, when it cites the newest and checks its cases against it.
The database named by --database-url gets the store's tables and benchmark rows: use a scratch database.

Targets: `ledger checkpoint` over 100,000 cases in under 10 s; verifying against a checkpoint adds less than
20% to `ledger verify --all`.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import arguments, fill
from soctriage.service.config import Settings
from soctriage.service.store import Store

SOCTRIAGE = str(Path(sys.executable).with_name("soctriage"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, env: dict[str, str], *args: str) -> tuple[float, float]:
    """Wall time of one `soctriage` command; its CPU time too, which a machine shared with other work
    inflates far less than the wall time."""
    start, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([SOCTRIAGE, *args], env=env, capture_output=True, text=True, check=False)
    elapsed, used = time.perf_counter() - start, _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"soctriage {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    print(f"  {label:<60} {elapsed:6.1f} s  (CPU {used:5.1f} s)")
    return elapsed, used


def run(label: str, settings: Settings, home: Path, n_cases: int) -> None:
    print(label)
    env = {**os.environ, "SOCTRIAGE_HOME": str(home)}
    if settings.database_url:
        env["SOCTRIAGE_DATABASE_URL"] = settings.database_url
    with Store.open(settings) as store:
        fill(label, store, n_cases)
        first = home / "first.note"
        timed("report evidence --format json (no checkpoint yet)", env, "report", "evidence", "-f", "json")
        timed(
            f"ledger checkpoint, first ({n_cases:,} new leaves)",
            env,
            "ledger",
            "checkpoint",
            "-o",
            str(first),
        )
        moved = [case.id for case in store.list_cases(limit=max(1, n_cases // 100))]
        for case_id in moved:
            store.append(case_id, "human:bench", "note", {"text": "later work"})
        timed(f"ledger checkpoint, {len(moved):,} cases moved", env, "ledger", "checkpoint")
        timed("soctriage --help (start-up alone)", env, "--help")
        plain = timed("ledger verify --all", env, "ledger", "verify", "--all")
        checked = timed(
            "ledger verify --all --checkpoint (first)",
            env,
            "ledger",
            "verify",
            "--all",
            "--checkpoint",
            str(first),
        )
        wall, cpu = ((b - a) / a for a, b in zip(plain, checked, strict=True))
        print(f"  verifying against the checkpoint adds {wall:.0%} wall time, {cpu:.0%} CPU time")
        timed(
            "report evidence --format json (cites the newest checkpoint)",
            env,
            "report",
            "evidence",
            "-f",
            "json",
        )


def main() -> None:
    args = arguments(__doc__)
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(home=Path(tmp), sqlite_synchronous="NORMAL")
            run("SQLite (synchronous=NORMAL)", settings, Path(tmp), args.cases)
    if args.database_url:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(home=Path(tmp), database_url=args.database_url)
            run(f"PostgreSQL {args.database_url}", settings, Path(tmp), args.cases)


if __name__ == "__main__":
    main()
