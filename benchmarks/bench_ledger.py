"""Ledger throughput: appends (single and batched) and verification of a large ledger.

    python benchmarks/bench_ledger.py [--database-url URL] [--entries N] [--verify-entries N]

Always measures the embedded SQLite store (both fsync modes) in a temporary folder; with --database-url
(PostgreSQL) it measures that database too. The database named by the URL gets the store's tables and
benchmark rows, so point it at a scratch database.

Targets: >= 5,000 entries/s appended on SQLite, and verify of 1,000,000 entries in < 30 s. Batched appends
(append_many, as the graph writes) meet the append target in both fsync modes; single appends, each its own
committed transaction, come near it only with synchronous=NORMAL, and with FULL are bound by one fsync per
commit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from soctriage.service.config import Settings
from soctriage.service.domain import GENESIS_HASH, Alert, LedgerEntry, Source, format_ts, utc_now
from soctriage.service.store import Store
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.schema import cases, ledger

BATCH = 100
ROWS_PER_INSERT = 10_000


def _alert(n: int) -> Alert:
    return Alert(
        id=f"bench-{n}-{time.time_ns()}",
        source=Source(vendor="bench", product="bench", format="ocsf", vendor_alert_id=str(n)),
        time=utc_now(),
        title="benchmark alert",
        raw="{}",
    )


def _payload(i: int) -> dict[str, object]:
    return {"tool": "intel.lookup", "args": {"sha256": f"{i:064x}"}, "result": {"score": i % 100, "ok": True}}


def _rate(label: str, count: int, run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    rate = count / elapsed
    print(f"  {label:<44} {count:>9,} entries in {elapsed:7.2f} s = {rate:>9,.0f} entries/s")
    return rate


def bench_appends(store: Store, entries: int) -> None:
    case_id = store.create_case(_alert(0), "bench").id

    def single() -> None:
        for i in range(entries):
            store.append(case_id, "enrichment_agent", "tool_result", _payload(i))

    def batched() -> None:
        for start in range(0, entries, BATCH):
            items = [("enrichment_agent", "tool_result", _payload(i)) for i in range(start, start + BATCH)]
            store.append_many(case_id, items)

    _rate("append (one transaction each)", entries, single)
    _rate(f"append_many (batches of {BATCH})", entries - entries % BATCH, batched)


def build_ledger(store: Store, total: int, per_case: int = 1_000) -> None:
    """Bulk-insert correctly chained entries, `per_case` per case, bypassing append for speed."""
    base = utc_now()
    rows: list[dict[str, object]] = []
    with write_transaction(store.engine) as conn:
        for c in range(max(1, total // per_case)):
            case_id = f"case-bench{c:07d}"
            prev = GENESIS_HASH
            for seq in range(1, per_case + 1):
                ts = base + timedelta(microseconds=seq)
                payload = _payload(seq)
                digest = LedgerEntry.compute_hash(case_id, seq, ts, "system", "tool_result", payload, prev)
                rows.append(
                    {
                        "case_id": case_id,
                        "seq": seq,
                        "ts": ts,
                        "actor": "system",
                        "kind": "tool_result",
                        "payload": payload,
                        "prev_hash": prev,
                        "hash": digest,
                    }
                )
                prev = digest
            conn.execute(
                cases.insert().values(
                    id=case_id,
                    tenant="bench",
                    status="new",
                    status_times={"new": format_ts(base)},
                    created_at=base,
                    updated_at=base,
                    head_seq=per_case,
                    head_hash=prev,
                )
            )
            if len(rows) >= ROWS_PER_INSERT:
                conn.execute(ledger.insert(), rows)
                rows.clear()
        if rows:
            conn.execute(ledger.insert(), rows)


def bench_verify(store: Store, total: int) -> None:
    start = time.perf_counter()
    build_ledger(store, total)
    print(f"  built {total:,} chained entries in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    report = store.verify()
    elapsed = time.perf_counter() - start
    checked = report.entries_checked
    print(
        f"  verify --all: {checked:>9,} entries, {len(report.cases):,} cases in {elapsed:7.2f} s"
        f" = {checked / elapsed:>9,.0f} entries/s  ok={report.ok}"
    )


def run(label: str, settings: Settings, entries: int, verify_entries: int) -> None:
    print(f"{label}")
    with Store.open(settings) as store:
        bench_appends(store, entries)
        if verify_entries:
            bench_verify(store, verify_entries)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="also benchmark this (PostgreSQL) database")
    parser.add_argument("--entries", type=int, default=5_000, help="entries appended per mode")
    parser.add_argument(
        "--verify-entries", type=int, default=1_000_000, help="ledger size to verify (0: skip)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("NORMAL", "FULL"):
            # The big verify ledger is built once, in the default (FULL) store.
            verify = args.verify_entries if mode == "FULL" else 0
            home = Path(tmp) / mode.lower()
            run(
                f"SQLite, synchronous={mode}",
                Settings(home=home, sqlite_synchronous=mode),
                args.entries,
                verify,
            )
    if args.database_url:
        run(
            f"PostgreSQL {args.database_url}",
            Settings(database_url=args.database_url),
            args.entries,
            args.verify_entries,
        )


if __name__ == "__main__":
    main()
