"""Peak memory of `soctriage triage` over a file of N alerts, as a user runs it (a fresh process and store).

    python benchmarks/bench_rss.py [--alerts 2000] [--grouped] [--database-url URL]

Writes N distinct alerts (the bundled samples with numbered vendor ids) to one JSONL file and runs
`soctriage triage FILE --json` on a fresh SOCTRIAGE_HOME with the builtin model. By default grouping is off
(every alert opens and runs its own case, the heavier path); `--grouped` uses the shipped policy. Reports the
child's peak RSS (`ru_maxrss`), its wall and CPU time, and cases triaged.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_service import alert_bodies, ungrouped_policy


def run(count: int, grouped: bool, database_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        alerts = folder / "alerts.jsonl"
        alerts.write_text("".join(json.dumps(body) + "\n" for body in alert_bodies(count)))
        env = {**os.environ, "SOCTRIAGE_HOME": str(folder / "home")}
        if not grouped:
            env["SOCTRIAGE_POLICY_PATH"] = str(ungrouped_policy(folder))
        if database_url:
            env["SOCTRIAGE_DATABASE_URL"] = database_url
        command = [str(Path(sys.executable).with_name("soctriage")), "triage", str(alerts), "--json"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode not in (0, 1):
            raise SystemExit(f"triage exited {done.returncode}: {done.stderr[-2000:]}")
        cases = {json.loads(line)["case_id"] for line in done.stdout.splitlines() if line.startswith("{")}
    return {
        "alerts": count,
        "cases": len(cases),
        # Linux reports ru_maxrss in KiB; it is the largest child seen so far, and this is the only child.
        "peak_rss_mb": after.ru_maxrss / 1024,
        "wall_s": wall,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--grouped", action="store_true", help="the shipped policy (grouping on)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL; default: SQLite")
    args = parser.parse_args()
    report = run(args.alerts, args.grouped, args.database_url)
    print(json.dumps(report, indent=2, default=lambda v: round(v, 1)))


if __name__ == "__main__":
    main()
