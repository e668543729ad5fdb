"""The case store through its Python API, on SQLite and (marker `postgres`) on a real PostgreSQL."""

from __future__ import annotations

import hashlib
import math
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import BaseModel
from soctriage.service.config import Settings
from soctriage.service.domain import (
    GENESIS_HASH,
    Alert,
    Case,
    Device,
    LedgerEntry,
    Severity,
    Source,
    Verdict,
    format_ts,
)
from soctriage.service.ingest.errors import Rejection
from soctriage.service.store import (
    CaseNotFoundError,
    DuplicateAlertError,
    LedgerInputError,
    Store,
)
from soctriage.service.store.engine import upgrade
from soctriage.service.store.schema import metadata
from sqlalchemy import Connection, event, text

RAW = '{"id": "ldt:1", "cmdline": "powershell -enc SQBFAFgA", "note": "\\u00e9t\\u00e9"}'


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def make_alert(n: int = 1, *, title: str = "Suspicious PowerShell", raw: str = RAW) -> Alert:
    return Alert(
        id=f"crowdstrike-{n:020d}",
        source=Source(
            vendor="crowdstrike", product="falcon", format="crowdstrike", vendor_alert_id=f"ldt:{n}"
        ),
        time=datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        severity=Severity.of(4),
        title=title,
        device=Device(hostname="WS-042", ip="10.0.0.42"),
        raw=raw,
        unmapped={"vendor_score": 87, "tags": ["a", "b"]},
    )


def backend_settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if backend == "postgres":
        return Settings(database_url=request.getfixturevalue("pg_url"))
    return Settings(home=tmp_path / "home")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with Store.open(backend_settings(request.param, request, tmp_path)) as opened:
        yield opened


def test_open_creates_the_sqlite_file_under_home_with_wal_and_foreign_keys(home: Path) -> None:
    with Store.open() as store:
        assert (home / "soctriage.db").is_file()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    # Reopening an up-to-date database migrates nothing and keeps the data.
    with Store.open() as store:
        store.create_case(make_alert(), "acme")
    with Store.open() as store:
        assert len(store.list_cases()) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_stores_opened_at_once_on_a_fresh_database_migrate_it_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = backend_settings(backend, request, tmp_path)
    barrier = threading.Barrier(4)
    opened: list[Store] = []

    def open_when_all_ready() -> None:
        barrier.wait()
        opened.append(Store.open(settings))

    threads = [threading.Thread(target=open_when_all_ready) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 4
    with opened[0].engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    opened[1].create_case(make_alert(), "acme")
    for each in opened:
        assert len(each.list_cases()) == 1
        each.close()


def test_migrations_produce_exactly_the_declared_schema(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() is not None


def test_create_case_stores_alert_and_opens_the_ledger(store: Store) -> None:
    alert = make_alert()
    case = store.create_case(alert, "acme")

    assert case.id.startswith("case-") and len(case.id) == len("case-") + 12
    assert (case.tenant, case.status, case.alert_ids) == ("acme", "new", (alert.id,))
    assert set(case.status_times) == {"new"}
    assert store.get_case(case.id) == case
    assert store.get_alert(alert.id, "acme") == alert  # raw and every normalized field round-trip

    [first] = store.entries(case.id)
    assert (first.seq, first.actor, first.kind, first.prev_hash) == (
        1,
        "system",
        "alert_received",
        GENESIS_HASH,
    )
    assert first.payload["title"] == alert.title
    assert first.payload["raw_sha256"] == hashlib.sha256(alert.raw.encode()).hexdigest()
    assert "raw" not in first.payload
    assert first.hash == first.expected_hash()


def test_redelivered_alert_finds_its_case_and_never_opens_another(store: Store) -> None:
    case = store.create_case(make_alert(7), "acme")

    assert store.find_case_by_alert(make_alert(7).id, "acme") == case
    assert store.find_case_by_alert(make_alert(7).id, "other-tenant") is None
    assert store.find_case_by_alert(make_alert(8).id, "acme") is None
    with pytest.raises(DuplicateAlertError, match=case.id) as raised:
        store.create_case(make_alert(7), "acme")
    assert raised.value.case_id == case.id
    assert len(store.list_cases()) == 1


def test_each_tenant_dedupes_its_own_alerts(store: Store) -> None:
    ours = store.create_case(make_alert(7), "acme")
    [theirs, again] = store.create_cases([make_alert(7), make_alert(7)], "globex")
    assert isinstance(theirs, Case) and theirs.id != ours.id and theirs.tenant == "globex"
    assert isinstance(again, DuplicateAlertError) and again.case_id == theirs.id
    assert store.find_case_by_alert(make_alert(7).id, "globex") == theirs
    assert store.get_alert(make_alert(7).id, "globex") == make_alert(7)
    with pytest.raises(DuplicateAlertError, match=ours.id):
        store.create_case(make_alert(7), "acme")


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrating_a_store_with_global_alert_ids_keeps_its_alerts_and_dedupes_per_tenant(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = backend_settings(backend, request, tmp_path)
    with Store.open(settings, migrate=False) as old:
        upgrade(old.engine, "0005")
        case = old.create_case(make_alert(7), "acme")
    with Store.open(settings) as store:
        assert store.find_case_by_alert(make_alert(7).id, "acme") == case
        assert store.create_case(make_alert(7), "globex").id != case.id
        with pytest.raises(DuplicateAlertError):
            store.create_case(make_alert(7), "acme")
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []


@pytest.mark.postgres
def test_an_alert_a_concurrent_writer_stores_first_is_refused_as_a_duplicate_not_raised(
    request: pytest.FixtureRequest,
) -> None:
    """On PostgreSQL intake's duplicate check and its insert are not under one lock: another writer may store the
    alert in between. That alert's outcome is its DuplicateAlertError, as for any stored alert."""
    with (
        Store.open(backend_settings("postgres", request, Path())) as store,
        Store.open(backend_settings("postgres", request, Path())) as other,
    ):
        theirs: list[Case] = []

        def store_it_first(conn: Connection, cursor: object, statement: str, *_: object) -> None:
            if not theirs and statement.startswith("SELECT alerts.id, alerts.case_id"):
                theirs.append(other.create_case(make_alert(9), "acme"))

        event.listen(store.engine, "after_cursor_execute", store_it_first)  # after its check found nothing
        [outcome] = store.create_cases([make_alert(9)], "acme")
        event.remove(store.engine, "after_cursor_execute", store_it_first)
    assert isinstance(outcome, DuplicateAlertError) and outcome.case_id == theirs[0].id


def test_create_cases_opens_a_batch_in_one_transaction_with_the_callers_work(store: Store) -> None:
    existing = store.create_case(make_alert(1), "acme")
    seen: list[list[str]] = []

    def record(conn: Connection, created: list[Case]) -> None:
        assert conn.in_transaction()
        seen.append([c.id for c in created])

    first, duplicate, second = store.create_cases(
        [make_alert(2), make_alert(1), make_alert(3)], "acme", on_created=record
    )
    assert isinstance(duplicate, DuplicateAlertError) and duplicate.case_id == existing.id
    assert isinstance(first, Case) and isinstance(second, Case)
    assert seen == [[first.id, second.id]]
    assert store.get_case(first.id) == first
    assert store.verify().ok

    def fail(conn: Connection, created: list[Case]) -> None:
        raise RuntimeError("enqueue failed")

    with pytest.raises(RuntimeError, match="enqueue failed"):
        store.create_cases([make_alert(4)], "acme", on_created=fail)
    assert store.find_case_by_alert(make_alert(4).id, "acme") is None  # rolled back with the caller's work


def test_set_status_keeps_the_first_time_of_each_status_and_writes_the_ledger(store: Store) -> None:
    case = store.create_case(make_alert(), "acme")
    triaging = store.set_status(case.id, "triaging", "triage_agent", "picked up")
    store.set_status(case.id, "awaiting_approval", "response_agent", "isolation needs approval")
    again = store.set_status(case.id, "triaging", "human:alice", "more context")

    assert again.status == "triaging"
    assert again.status_times["triaging"] == triaging.status_times["triaging"]
    assert sorted(again.status_times, key=again.status_times.__getitem__) == [
        "new",
        "triaging",
        "awaiting_approval",
    ]
    changes = [e for e in store.entries(case.id) if e.kind == "status_change"]
    assert [(e.actor, e.payload["from"], e.payload["to"]) for e in changes] == [
        ("triage_agent", "new", "triaging"),
        ("response_agent", "triaging", "awaiting_approval"),
        ("human:alice", "awaiting_approval", "triaging"),
    ]
    # The status time is the time of the ledger entry that recorded it: MTTx is auditable.
    assert again.status_times["triaging"] == changes[0].ts
    with pytest.raises(ValueError, match="unknown case status 'done'"):
        store.set_status(case.id, "done", "system", "x")  # type: ignore[arg-type]


def test_set_verdict_round_trips_and_refuses_evidence_missing_from_the_ledger(store: Store) -> None:
    case = store.create_case(make_alert(), "acme")
    store.append(case.id, "enrichment_agent", "tool_result", {"tool": "intel", "score": 90})
    verdict = Verdict(
        disposition="true_positive",
        severity=Severity.of(4),
        confidence=0.91,
        techniques=("T1059.001",),
        summary="Encoded PowerShell",
        rationale="intel hit",
        evidence=(1, 2),
    )
    assert store.set_verdict(case.id, verdict).verdict == verdict
    assert store.get_case(case.id).verdict == verdict  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"cites ledger seq \[3, 9\]"):
        store.set_verdict(case.id, verdict.model_copy(update={"evidence": (1, 3, 9)}))


def test_list_cases_filters_by_status_and_tenant_newest_first(store: Store) -> None:
    first = store.create_case(make_alert(1), "acme")
    second = store.create_case(make_alert(2), "acme")
    third = store.create_case(make_alert(3), "globex")
    store.set_status(second.id, "closed", "system", "benign")

    assert [c.id for c in store.list_cases()] == [third.id, second.id, first.id]
    assert [c.id for c in store.list_cases(tenant="acme")] == [second.id, first.id]
    assert [c.id for c in store.list_cases(status="closed")] == [second.id]
    assert [c.id for c in store.list_cases(limit=1)] == [third.id]
    assert store.list_cases(status="new", tenant="globex")[0].alert_ids == (make_alert(3).id,)


def test_unknown_case_and_alert(store: Store) -> None:
    assert store.get_case("case-000000000000") is None
    assert store.get_alert("nope", "acme") is None
    with pytest.raises(CaseNotFoundError, match="case-000000000000"):
        store.append("case-000000000000", "system", "note", {})
    with pytest.raises(CaseNotFoundError):
        store.entries("case-000000000000")
    with pytest.raises(CaseNotFoundError):
        store.set_status("case-000000000000", "closed", "system", "x")


def test_timestamps_round_trip_to_the_microsecond(store: Store) -> None:
    case = store.create_case(make_alert(), "acme")
    written = store.append_many(case.id, [("system", "note", {"i": i}) for i in range(5)])
    read = store.entries(case.id, from_seq=2)

    assert read == written
    assert [format_ts(e.ts) for e in read] == [format_ts(e.ts) for e in written]
    assert all(e.ts.tzinfo is not None and e.ts.utcoffset().total_seconds() == 0 for e in read)  # type: ignore[union-attr]
    assert store.get_case(case.id).created_at == case.created_at  # type: ignore[union-attr]


def test_sqlite_keeps_timestamps_as_canonical_utc_text(home: Path) -> None:
    with Store.open() as store:
        case = store.create_case(make_alert(), "acme")
        [entry] = store.entries(case.id)
    with sqlite3.connect(home / "soctriage.db") as raw:
        stored = raw.execute("SELECT ts FROM ledger WHERE case_id = ?", (case.id,)).fetchone()[0]
    assert stored == format_ts(entry.ts)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"score": math.nan}, r"payload\['score'\]: nan is not valid JSON"),
        ({"nested": [1, {"x": math.inf}]}, r"payload\['nested'\]\[1\]\['x'\]: inf is not valid JSON"),
        ({"when": datetime(2025, 1, 1, tzinfo=UTC)}, r"payload\['when'\]: datetime is not a JSON type"),
        ({"tags": {"a", "b"}}, r"payload\['tags'\]: set is not a JSON type"),
        ({"model": Severity()}, r"Severity is not a JSON type \(use model_dump\(mode='json'\)\)"),
        ({1: "x"}, r"payload: key 1 is int; JSON keys are strings"),
        (["not", "an", "object"], "note payload must be a JSON object"),
    ],
)
def test_non_json_payloads_are_refused_and_nothing_is_written(
    store: Store, payload: object, message: str
) -> None:
    case = store.create_case(make_alert(), "acme")
    with pytest.raises(LedgerInputError, match=message):
        store.append(case.id, "system", "note", payload)  # type: ignore[arg-type]
    with pytest.raises(LedgerInputError):
        store.append_many(case.id, [("system", "note", {"ok": 1}), ("system", "note", payload)])  # type: ignore[list-item]
    assert len(store.entries(case.id)) == 1


def test_unknown_kind_and_empty_actor_are_refused(store: Store) -> None:
    case = store.create_case(make_alert(), "acme")
    with pytest.raises(LedgerInputError, match="unknown ledger kind 'gossip'"):
        store.append(case.id, "system", "gossip", {})
    with pytest.raises(LedgerInputError, match="actor must be a non-empty string"):
        store.append(case.id, " ", "note", {})


def test_awkward_json_payloads_read_back_exactly_and_still_verify(store: Store) -> None:
    payload = {
        "unicode": "été ☃ \U0001f600",
        "nul": "a\u0000b",
        "big": 2**70,
        "floats": [1e20, -0.0, 0.1, 1e-7, 123456789.123456789],
        "tuple": (1, 2),
        "empty": {"list": [], "dict": {}, "none": None, "bool": False},
        "<script>": "</script>",
    }
    case = store.create_case(make_alert(), "acme")
    written = store.append(case.id, "enrichment_agent", "tool_result", payload)

    [read] = store.entries(case.id, from_seq=2)
    assert read == written
    assert read.payload["tuple"] == [1, 2]
    assert read.hash == read.expected_hash()
    assert store.verify([case.id]).ok


def test_quarantine_keeps_raw_bytes_whole(store: Store) -> None:
    raw = b'{"id": "x", "bad": \xff\xfe\x00 not json'
    first, second = store.quarantine(
        [
            Rejection(
                source="alerts.jsonl", line=3, reason="not JSON", field=None, raw=raw, format="crowdstrike"
            ),
            Rejection(source="-", line=1, reason="missing field", field="event.id", raw=b"{}", format=None),
        ],
        "acme",
    )

    assert second > first
    newest, oldest = store.list_quarantine()
    assert (newest.id, newest.rejection.field, newest.rejection.format) == (second, "event.id", None)
    assert oldest.rejection == Rejection(
        source="alerts.jsonl", line=3, reason="not JSON", field=None, raw=raw, format="crowdstrike"
    )
    assert oldest.received_at.tzinfo is not None
    assert [r.id for r in store.list_quarantine(limit=1)] == [second]
    [other] = store.quarantine([Rejection(source="-", line=1, reason="bad", raw=b"x")], "globex")
    assert [r.id for r in store.list_quarantine(tenant="acme")] == [second, first]
    assert [r.tenant for r in store.list_quarantine()] == ["globex", "acme", "acme"]
    assert store.get_quarantined(other) == store.list_quarantine(tenant="globex")[0]
    assert store.get_quarantined(other + 1) is None


def test_ledger_entries_are_plain_domain_objects(store: Store) -> None:
    class Payload(BaseModel):
        tool: str

    case = store.create_case(make_alert(), "acme")
    entry = store.append(
        case.id, "enrichment_agent", "tool_call", Payload(tool="intel").model_dump(mode="json")
    )
    assert isinstance(entry, LedgerEntry)
    assert (entry.seq, entry.prev_hash) == (2, store.entries(case.id)[0].hash)


def test_entry_reads_one_entry_by_seq_and_none_past_the_head(store: Store) -> None:
    case = store.create_case(make_alert(), "acme")
    written = store.append_many(case.id, [("system", "note", {"i": i}) for i in range(3)])

    assert store.entry(case.id, 3) == written[1]
    assert store.entry(case.id, 1) == store.entries(case.id)[0]
    assert store.entry(case.id, 1).payload["id"] == make_alert().id  # type: ignore[union-attr]
    assert store.entry(case.id, 5) is None
    assert store.entry(case.id, 0) is None
    assert store.entry("case-000000000000", 1) is None
