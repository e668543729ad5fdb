"""Evidence report over a large ledger: 100,000 cases / 3,000,000 entries by default.

    python benchmarks/bench_report.py [--database-url URL] [--cases N] [--skip-sqlite]

Builds correctly chained ledgers (30 entries per case, shaped like the graph's: alert, status changes,
enrichment calls, verdict, guarded actions, approvals, containment) with bulk inserts, then times the report
three ways: re-verifying every chain (worker processes beside the report's pass), reusing an earlier
report's verification results, and without verification. Prints wall time, entries/s and the peak memory
growth of the report itself.
The database named by --database-url gets the store's tables and benchmark rows: use a scratch database.

Target: the report over 3,000,000 entries in under 30 s.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from soctriage.service.config import Settings
from soctriage.service.domain import GENESIS_HASH, LedgerEntry, format_ts
from soctriage.service.reports import EvidenceParams, EvidenceReport, evidence_from_store
from soctriage.service.store import Store
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.schema import cases, ledger
from sqlalchemy import text

ROWS_PER_INSERT = 10_000
START = datetime(2026, 1, 1, tzinfo=UTC)
SOURCES = [
    ("CrowdStrike", "Falcon Insight"),
    ("Microsoft", "Defender for Endpoint"),
    ("SentinelOne", "Singularity"),
]
SEVERITIES = ["Low", "Medium", "High", "Critical"]


def _case_entries(n: int) -> list[tuple[timedelta, str, str, dict[str, Any]]]:
    """The 30 entries of case `n`: (offset from receipt, actor, kind, payload)."""
    vendor, product = SOURCES[n % len(SOURCES)]
    sev = SEVERITIES[n % len(SEVERITIES)]
    host, tp = f"WS{n:06d}", n % 3 != 0
    alert = {
        "id": f"bench-{n}",
        "source": {"vendor": vendor, "product": product, "format": "ocsf", "vendor_alert_id": str(n)},
        "time": format_ts(START + timedelta(minutes=n) - timedelta(seconds=30 + n % 300)),
        "severity": {"id": 3, "label": sev},
        "title": f"Suspicious PowerShell on {host}",
        "device": {"hostname": host, "ip": "10.0.0.1"},
        "process": {"name": "powershell.exe", "cmdline": "powershell -enc SQBFAFgA", "pid": 4242},
        "raw_sha256": f"{n:064x}",
    }
    items: list[tuple[timedelta, str, str, dict[str, Any]]] = [
        (timedelta(0), "system", "alert_received", alert),
        (
            timedelta(seconds=0.1),
            "system",
            "status_change",
            {"from": "new", "to": "triaging", "reason": "triage"},
        ),
        (timedelta(seconds=0.2), "triage_agent", "reasoning", {"model": "builtin", "category": "execution"}),
        (
            timedelta(seconds=0.25),
            "triage_agent",
            "llm_call",
            {
                "model": "gpt-bench",
                "prompt_tokens": 900,
                "completion_tokens": 120,
                "total_tokens": 1020,
                "latency_ms": 850.0 + n % 400,
                "attempts": [{"call": 1, "outcome": "ok", "latency_ms": 850.0}],
            },
        ),
    ]
    for i in range(9):
        args = {"indicator": f"{n * 16 + i:040x}"}
        items.append(
            (
                timedelta(seconds=0.3 + i / 100),
                "enrichment_agent",
                "tool_call",
                {"tool": "intel", "args": args},
            )
        )
        items.append(
            (
                timedelta(seconds=0.3 + i / 100),
                "enrichment_agent",
                "tool_result",
                {"tool": "intel", "args": args, "status": "ok", "output": {"verdict": "unknown", "hits": []}},
            )
        )
    disposition = "true_positive" if tp else "false_positive"
    items.append(
        (
            timedelta(seconds=1 + n % 50),
            "triage_agent",
            "verdict",
            {
                "model": "builtin",
                "disposition": disposition,
                "confidence": 0.9,
                "evidence": [1, 5],
                "summary": "s",
            },
        )
    )
    decision = "needs_approval" if n % 10 == 0 else "allow"
    guard = {
        "action_id": "A1",
        "tool": "isolate_host",
        "decision": decision,
        "rule_id": "critical-asset-approval" if decision == "needs_approval" else "contain-default",
        "reason": "policy",
        "targets": [{"kind": "host", "value": host, "criticality": "high" if n % 10 == 0 else "low"}],
    }
    executed = {
        "action_id": "A1",
        "tool": "isolate_host",
        "status": "simulated",
        "output": {"connector": "simulator"},
    }
    step = timedelta(seconds=60 + n % 600)
    items += [
        (
            step,
            "response_agent",
            "tool_call",
            {"action_id": "A1", "tool": "isolate_host", "args": {"hostname": host}},
        ),
        (step, "guard", "guard_decision", guard),
        (
            step,
            "guard",
            "approval_requested" if decision == "needs_approval" else "note",
            {"action_id": "A1", "tool": "isolate_host", "expires_at": format_ts(START + timedelta(days=400))}
            if decision == "needs_approval"
            else {"event": "bench"},
        ),
        (
            step * 2,
            "human:alice" if decision == "needs_approval" else "system",
            "approval_decided" if decision == "needs_approval" else "note",
            {"action_id": "A1", "outcome": "approved", "detail": "approved by alice"}
            if decision == "needs_approval"
            else {"event": "bench"},
        ),
        (step * 2, "response_agent", "tool_result", executed),
        (step * 2, "response_agent", "action_executed", executed),
        (step * 2, "system", "status_change", {"from": "triaging", "to": "contained", "reason": "contained"}),
    ]
    return items


def _rows(n: int) -> Iterator[dict[str, Any]]:
    case_id = f"case-b{n:010d}"
    received = START + timedelta(minutes=n)
    prev = GENESIS_HASH
    for seq, (offset, actor, kind, payload) in enumerate(_case_entries(n), start=1):
        ts = received + offset + timedelta(microseconds=seq)
        digest = LedgerEntry.compute_hash(case_id, seq, ts, actor, kind, payload, prev)
        yield {
            "case_id": case_id,
            "seq": seq,
            "ts": ts,
            "actor": actor,
            "kind": kind,
            "payload": payload,
            "prev_hash": prev,
            "hash": digest,
        }
        prev = digest


def build(store: Store, n_cases: int) -> int:
    """Bulk-insert `n_cases` chained cases; returns the number of entries written."""
    rows: list[dict[str, Any]] = []
    heads: list[dict[str, Any]] = []
    total = 0
    with write_transaction(store.engine) as conn:
        for n in range(n_cases):
            case_rows = list(_rows(n))
            last = case_rows[-1]
            heads.append(
                {
                    "id": last["case_id"],
                    "tenant": "bench",
                    "status": "contained",
                    "status_times": {},
                    "created_at": case_rows[0]["ts"],
                    "updated_at": last["ts"],
                    "head_seq": last["seq"],
                    "head_hash": last["hash"],
                }
            )
            rows += case_rows
            if len(rows) >= ROWS_PER_INSERT:
                conn.execute(cases.insert(), heads)
                conn.execute(ledger.insert(), rows)
                total += len(rows)
                rows, heads = [], []
        if rows:
            conn.execute(cases.insert(), heads)
            conn.execute(ledger.insert(), rows)
            total += len(rows)
    return total


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, store: Store, entries: int, **kwargs: Any) -> EvidenceReport:
    params = EvidenceParams(generated_at=datetime.now(UTC), tenant="bench")
    before = _peak_mb()
    start = time.perf_counter()
    report = evidence_from_store(store, params, **kwargs)
    elapsed = time.perf_counter() - start
    print(
        f"  {label:<38} {elapsed:7.1f} s = {entries / elapsed:>9,.0f} entries/s"
        f"  peak RSS +{max(0.0, _peak_mb() - before):.0f} MB (now {_peak_mb():.0f} MB)"
        f"  cases={report.integrity.cases:,} ok={report.integrity.ok:,} unverified={report.integrity.unverified:,}"
    )
    return report


def fill(label: str, store: Store, n_cases: int) -> int:
    """Build `n_cases` chained cases in an empty store, ready to be read; returns the entries written."""
    if store.list_cases(limit=1):
        raise SystemExit(f"{label}: the database already holds cases; point --database-url at an empty one")
    start = time.perf_counter()
    entries = build(store, n_cases)
    if store.engine.dialect.name == "postgresql":
        # Autovacuum would analyze a ledger that grew over months; one bulk load leaves the planner with
        # empty-table statistics, and its plans for the report's range scans then go quadratic.
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    print(f"  built {n_cases:,} cases / {entries:,} chained entries in {time.perf_counter() - start:.0f} s")
    return entries


def run(label: str, settings: Settings, n_cases: int) -> None:
    print(label)
    with Store.open(settings) as store:
        entries = fill(label, store, n_cases)
        timed("report, no verification", store, entries, verify="none")
        full = timed("report, every chain verified", store, entries, verify="full")
        timed("report, earlier verification reused", store, entries, verify="previous", previous=full)


def arguments(doc: str | None) -> argparse.Namespace:
    """The options every large-ledger benchmark takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="also benchmark this (PostgreSQL) database")
    parser.add_argument("--cases", type=int, default=100_000, help="cases to build (30 entries each)")
    parser.add_argument("--skip-sqlite", action="store_true", help="only the --database-url database")
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__)
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run(
                "SQLite (synchronous=NORMAL)",
                Settings(home=Path(tmp), sqlite_synchronous="NORMAL"),
                args.cases,
            )
    if args.database_url:
        run(f"PostgreSQL {args.database_url}", Settings(database_url=args.database_url), args.cases)


if __name__ == "__main__":
    main()
