"""The hash-chained ledger: gapless appends under concurrency, and verify naming the first tampered seq.

Tampering is done the way an attacker with database access would: raw SQL on the tables.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import threading
from collections.abc import Iterator
from itertools import pairwise
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import pytest
from soctriage.service.config import Settings
from soctriage.service.domain import GENESIS_HASH, LedgerEntry, canonical_json, format_ts, utc_now
from soctriage.service.store import LedgerProblem, Store, verify_entries
from sqlalchemy import text
from test_store import BACKENDS, backend_settings, make_alert


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with Store.open(backend_settings(request.param, request, tmp_path)) as opened:
        yield opened


def build_case(store: Store, entries: int = 10) -> str:
    """A case whose ledger has seq 1..entries."""
    case = store.create_case(make_alert(hash(store) % 10**6 + entries), "acme")
    store.append_many(case.id, [("triage_agent", "reasoning", {"step": i}) for i in range(2, entries + 1)])
    return case.id


def tamper(store: Store, sql: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


def test_appends_chain_and_verify_reports_each_head(store: Store) -> None:
    case_id = build_case(store, 3)
    single = store.append(case_id, "guard", "guard_decision", {"decision": "allow"})
    batch = store.append_many(case_id, [("system", "note", {"n": 1}), ("system", "note", {"n": 2})])
    assert store.append_many(case_id, []) == []

    entries = store.entries(case_id)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[3] == single and entries[4:] == batch
    assert all(e.prev_hash == p.hash for p, e in pairwise(entries))
    assert verify_entries(entries) is None

    report = store.verify([case_id])
    [check] = report.cases
    assert report.ok and check.ok and check.bad_seq is None
    assert (check.entries, check.head_seq, check.head_hash) == (6, 6, batch[-1].hash)
    assert store.verify().ok and store.verify().entries_checked == 6


@pytest.mark.parametrize(
    ("sql", "bad_seq", "reason"),
    [
        (
            "UPDATE ledger SET payload = '{\"step\"\\:666}' WHERE case_id = :c AND seq = 7",
            7,
            "entry 7 hash mismatch: content was edited",
        ),
        (
            "UPDATE ledger SET actor = 'human:mallory' WHERE case_id = :c AND seq = 4",
            4,
            "entry 4 hash mismatch",
        ),
        (
            "UPDATE ledger SET payload = '{\"step\": NaN' WHERE case_id = :c AND seq = 6",
            6,
            "entry 6 hash mismatch: stored content no longer parses",
        ),
        ("DELETE FROM ledger WHERE case_id = :c AND seq = 5", 5, "seq 5 missing (deleted)"),
        ("DELETE FROM ledger WHERE case_id = :c AND seq IN (5, 6)", 5, "seqs 5-6 missing (deleted)"),
        ("DELETE FROM ledger WHERE case_id = :c AND seq = 1", 1, "seq 1 missing (deleted)"),
        (
            "DELETE FROM ledger WHERE case_id = :c AND seq >= 8",
            8,
            "ledger ends at seq 7 but the case head says 10 (entries deleted)",
        ),
        (
            "UPDATE ledger SET seq = CASE seq WHEN 3 THEN 1003 WHEN 4 THEN 3 END"
            " WHERE case_id = :c AND seq IN (3, 4);"
            " UPDATE ledger SET seq = 4 WHERE case_id = :c AND seq = 1003",
            3,
            "entry 3 prev_hash does not link to entry 2 (reordered or inserted)",
        ),
        (
            "INSERT INTO ledger (case_id, seq, ts, actor, kind, payload, prev_hash, hash)"
            " SELECT case_id, 11, ts, 'human:mallory', 'note', '{}', hash, hash FROM ledger"
            " WHERE case_id = :c AND seq = 10",
            11,
            "entry 11 hash mismatch: content was edited",
        ),
        (
            "UPDATE cases SET head_hash = :forged WHERE id = :c",
            10,
            "entry 10 hash differs from the case head hash (the chain was rewritten)",
        ),
    ],
    ids=[
        "edit-payload",
        "edit-actor",
        "edit-to-invalid-json",
        "delete-middle",
        "delete-two",
        "delete-first",
        "delete-tail",
        "swap-seq",
        "insert-forged",
        "forge-head",
    ],
)
def test_verify_names_the_first_bad_seq_after_raw_sql_tampering(
    store: Store, sql: str, bad_seq: int, reason: str
) -> None:
    victim = build_case(store, 10)
    bystander = build_case(store, 4)
    if "NaN" in sql and store.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's json type refuses text that is not JSON")
    for statement in sql.split(";"):
        tamper(store, statement, c=victim, forged="f" * 64)

    report = store.verify()
    assert not report.ok
    [failure] = report.failures
    assert failure.case_id == victim
    assert failure.bad_seq == bad_seq
    assert reason in str(failure.problem)
    assert next(c for c in report.cases if c.case_id == bystander).ok
    # Verifying just the victim gives the same answer as the full streaming pass.
    [alone] = store.verify([victim]).cases
    assert alone.problem == failure.problem


def test_the_hash_is_sha256_of_prev_hash_and_the_canonical_json_of_the_whole_entry() -> None:
    """The store builds the hashed body around the payload's canonical text instead of serialising the whole
    entry; for any content that must be byte for byte the documented canonical JSON."""
    rng = random.Random(1)
    alphabet = 'aé"\\\n\u2028\x00日😀 {}[],:'

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))

    def value(depth: int = 0) -> object:
        leaves = [text(), rng.randint(-(10**12), 10**12), rng.random() * 1e6, None, True, False]
        if depth < 3 and rng.random() < 0.4:
            return rng.choice(
                [[value(depth + 1) for _ in range(3)], {text(): value(depth + 1) for _ in range(3)}]
            )
        return rng.choice(leaves)

    for _ in range(2_000):
        payload = {text(): value() for _ in range(rng.randint(0, 5))}
        case_id, actor, kind, prev = text(), text(), text(), text()
        seq, ts = rng.randint(1, 10**9), utc_now()
        entry = {"case_id": case_id, "seq": seq, "ts": format_ts(ts), "actor": actor, "kind": kind}
        body = canonical_json({**entry, "payload": payload, "prev_hash": prev})
        expected = hashlib.sha256((prev + body).encode()).hexdigest()
        assert LedgerEntry.compute_hash(case_id, seq, ts, actor, kind, payload, prev) == expected


def test_stored_json_respelled_without_changing_its_value_still_verifies(store: Store) -> None:
    """Verify hashes the stored payload text as it is, and only a mismatch is parsed and re-serialised: text a
    database or a restore re-spelled (spacing, key order) must not read as tampering, an edit must."""
    case_id = build_case(store, 3)
    store.append(case_id, "system", "note", {"b": [1, 2], "a": "é"})
    tamper(
        store,
        "UPDATE ledger SET payload = :p WHERE case_id = :c AND seq = 4",
        c=case_id,
        p='{ "a" : "é", "b" : [1, 2] }',
    )
    assert store.verify([case_id]).ok

    tamper(
        store,
        "UPDATE ledger SET payload = :p WHERE case_id = :c AND seq = 4",
        c=case_id,
        p='{"a": "e", "b": [1, 2]}',
    )
    [check] = store.verify([case_id]).cases
    assert check.bad_seq == 4 and "content was edited" in str(check.problem)


def test_a_correctly_hashed_forged_tail_is_caught_by_the_case_head(store: Store) -> None:
    case_id = build_case(store, 5)
    last = store.entries(case_id)[-1]
    ts = utc_now()
    forged_hash = LedgerEntry.compute_hash(case_id, 6, ts, "system", "note", {"forged": True}, last.hash)
    tamper(
        store,
        "INSERT INTO ledger (case_id, seq, ts, actor, kind, payload, prev_hash, hash)"
        " VALUES (:c, 6, :ts, 'system', 'note', '{\"forged\"\\:true}', :prev, :hash)",
        c=case_id,
        ts=format_ts(ts) if store.engine.dialect.name == "sqlite" else ts,
        prev=last.hash,
        hash=forged_hash,
    )
    [check] = store.verify([case_id]).cases
    assert check.bad_seq == 6
    assert "ledger continues to seq 6 past the case head at seq 5" in str(check.problem)


def test_a_case_with_every_entry_deleted_fails(store: Store) -> None:
    case_id = build_case(store, 3)
    tamper(store, "DELETE FROM ledger WHERE case_id = :c", c=case_id)
    [check] = store.verify().cases
    assert (check.case_id, check.bad_seq, check.entries) == (case_id, 1, 0)
    assert "ledger ends at seq 0 but the case head says 3" in str(check.problem)


def test_verifying_an_unknown_case_is_an_error(store: Store) -> None:
    case_id = build_case(store, 2)
    report = store.verify(["case-doesnotexist", case_id])
    assert not report.ok
    missing, present = report.cases
    assert (missing.ok, missing.bad_seq, str(missing.problem)) == (
        False,
        None,
        "case case-doesnotexist does not exist",
    )
    assert present.ok


def test_verify_entries_checks_a_detached_chain() -> None:
    ts = utc_now()
    chain: list[LedgerEntry] = []
    prev = GENESIS_HASH
    for seq in (1, 2, 3):
        digest = LedgerEntry.compute_hash("case-x", seq, ts, "system", "note", {"seq": seq}, prev)
        chain.append(LedgerEntry(case_id="case-x", seq=seq, ts=ts, actor="system", kind="note",
                                 payload={"seq": seq}, prev_hash=prev, hash=digest))  # fmt: skip
        prev = digest

    assert verify_entries(chain) is None
    assert verify_entries(chain, head_seq=3, head_hash=prev) is None
    assert verify_entries(chain[:2], head_hash=prev) == LedgerProblem(
        2, "entry 2 hash differs from the case head hash (the chain was rewritten)"
    )
    assert verify_entries([chain[0], chain[0]]).reason.startswith("seq 1 appears again")  # type: ignore[union-attr]
    other = chain[1].model_copy(update={"case_id": "case-y"})
    assert verify_entries([chain[0], other]) == LedgerProblem(2, "entry 2 belongs to case case-y, not case-x")
    assert verify_entries(chain[1:]) == LedgerProblem(1, "seq 1 missing (deleted)")
    forged_start = chain[0].model_copy(update={"prev_hash": "1" * 64})
    assert verify_entries([forged_start]).seq == 1  # type: ignore[union-attr]
    assert verify_entries([]) is None


def test_threads_appending_to_one_case_keep_seq_gapless(store: Store) -> None:
    case_id = build_case(store, 1)

    def writer(n: int) -> None:
        for i in range(25):
            if i % 5 == 0:
                store.append_many(case_id, [("system", "note", {"w": n, "i": i, "part": p}) for p in (1, 2)])
            else:
                store.append(case_id, "system", "note", {"w": n, "i": i})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.seq for e in store.entries(case_id)] == list(range(1, 1 + 6 * 30 + 1))
    assert store.verify([case_id]).ok


def _append_from_process(settings_json: str, case_id: str, count: int, start: EventType) -> None:
    with Store.open(Settings.model_validate_json(settings_json)) as opened:
        start.wait(30)
        for i in range(count):
            opened.append(
                case_id,
                "enrichment_agent",
                "tool_result",
                {"pid": multiprocessing.current_process().pid, "i": i},
            )


@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_appending_to_one_case_keep_seq_gapless(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = backend_settings(backend, request, tmp_path)
    with Store.open(settings) as opened:
        case_id = build_case(opened, 1)
        context = multiprocessing.get_context("spawn")  # a forked engine would share sockets and file locks
        start = context.Event()
        workers = [
            context.Process(
                target=_append_from_process, args=(settings.model_dump_json(), case_id, 200, start)
            )
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        start.set()
        for worker in workers:
            worker.join(120)
        assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]

        entries = opened.entries(case_id)
        assert [e.seq for e in entries] == list(range(1, 802))
        assert len({e.payload["pid"] for e in entries[1:]}) == 4
        report = opened.verify()
        assert report.ok and report.entries_checked == 801
