"""The evidence report over a store: one ordered stream of ledger rows, verified as it goes.

Only the ledger is read for numbers. The cases table is read for two things the ledger does not hold:
which tenant owns a chain (the scope of the report) and the stored head each chain must end at.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from typing import Any, Literal, NamedTuple

from soctriage.service.reports.evidence import EvidenceBuilder
from soctriage.service.reports.model import CheckpointCitation, EvidenceReport
from soctriage.service.reports.params import EvidenceParams
from soctriage.service.store import Store
from soctriage.service.store.chain import CaseVerification, ChainChecker, LedgerProblem
from soctriage.service.store.checkpoint_citation import cite_checkpoint
from soctriage.service.store.engine import create_store_engine
from soctriage.service.store.schema import cases, ledger
from soctriage.service.store.signing import PublicKey
from soctriage.service.store.verify import STORED_ENTRY_COLUMNS, verify_rows
from sqlalchemy import and_, or_, select, true

VerifyMode = Literal["full", "previous", "none"]
# Rows per round trip: bounded memory however large the ledger is.
STREAM_BATCH = 10_000
# Kinds whose payload the report never reads. Without verification these rows are not even fetched (only a
# chain's last row is, for its head): on a typical ledger that is two rows in three.
_UNREAD_KINDS = frozenset({"reasoning", "tool_call", "tool_result", "chat_message"})
# From this many cases in scope, chains are re-verified by worker processes beside the report's own pass:
# hashing every entry is CPU-bound, and starting a worker costs about a second.
PARALLEL_VERIFY_MIN_CASES = 5_000
# ...where at least this many cores are usable: on two, the workers cost 72% more CPU than verifying inline (the
# cost review's measurement) and the report came no sooner, as they compete with its own pass for both cores.
PARALLEL_VERIFY_MIN_CORES = 3
MAX_VERIFY_WORKERS = 8


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS says (a container's cpuset, taskset),
    which `os.cpu_count()` ignores."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def verify_in_workers(case_count: int, cores: int) -> bool:
    """Whether a full verification of `case_count` chains on `cores` usable cores runs in worker processes."""
    return case_count >= PARALLEL_VERIFY_MIN_CASES and cores >= PARALLEL_VERIFY_MIN_CORES


class _Stored(NamedTuple):
    """A row as stored (ts and payload text), for the chain checker to report when it does not parse."""

    case_id: str
    seq: int
    ts: str
    actor: str
    kind: str
    payload: str
    prev_hash: str
    hash: str


class _Entry(NamedTuple):
    case_id: str
    seq: int
    ts: datetime
    actor: str
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


def _in_scope(params: EvidenceParams) -> Any:
    """Ids of the cases the report covers: alert received in the period, owned by the tenant."""
    dated = select(ledger.c.case_id).where(ledger.c.seq == 1, ledger.c.kind == "alert_received")
    if params.since is not None:
        dated = dated.where(ledger.c.ts >= params.since)
    if params.until is not None:
        dated = dated.where(ledger.c.ts < params.until)
    if params.tenant:
        dated = dated.join(cases, cases.c.id == ledger.c.case_id).where(cases.c.tenant == params.tenant)
    return dated


def _query(
    params: EvidenceParams, *, every_row: bool, case_range: tuple[str, str | None] | None = None
) -> Any:
    scope = ledger.c.case_id.in_(_in_scope(params))
    if case_range is not None:
        low, high = case_range
        scope = and_(scope, ledger.c.case_id >= low, *([ledger.c.case_id < high] if high else []))
    return (
        select(
            # As stored (text / json text), parsed below: content that no longer parses is tampering to
            # report, not an exception.
            *STORED_ENTRY_COLUMNS,
            cases.c.head_seq,
            cases.c.head_hash,
        )
        .select_from(ledger.join(cases, cases.c.id == ledger.c.case_id))
        .where(scope)
        .where(
            true()
            if every_row
            else or_(ledger.c.kind.not_in(_UNREAD_KINDS), ledger.c.seq >= cases.c.head_seq)
        )
        .order_by(ledger.c.case_id, ledger.c.seq)
    )


_Row = tuple[str, int, str | datetime, str, str, str, str, str, int, str]


class _Case:
    """One chain being read: its parsed entries, and its checker when verifying."""

    def __init__(self, case_id: str, head: tuple[int, str], verify: bool) -> None:
        self.case_id = case_id
        self.head = head
        self.entries: list[_Entry] = []
        self.checker = ChainChecker(case_id) if verify else None
        self.unparsed = 0

    def add(self, row: _Row) -> None:
        # Runs once per ledger row (millions): one tuple unpack, no attribute lookups on the row.
        case_id, seq, ts_text, actor, kind, payload_text, prev_hash, digest, _, _ = row
        checker = self.checker
        if checker is not None and checker.problem is None:
            # The checker hashes the stored text as it is, so verifying parses nothing the report skips.
            checker.feed(_Stored(*row[:8]))
        try:
            # SQLite hands back the stored text; psycopg a datetime whatever the declared type.
            ts = ts_text if isinstance(ts_text, datetime) else datetime.fromisoformat(ts_text)
            payload = json.loads(payload_text) if kind not in _UNREAD_KINDS else {}
            if not isinstance(payload, dict):
                raise ValueError("payload is not a JSON object")
        except (TypeError, ValueError):
            self.unparsed += 1
            return
        self.entries.append(_Entry(case_id, seq, ts, actor, kind, payload, prev_hash, digest))

    def verification(self, previous: dict[tuple[str, int, str], bool]) -> CaseVerification | None:
        if self.checker is not None:
            problem = self.checker.finish(*self.head)
            return CaseVerification(self.case_id, problem, self.checker.count, *self.head)
        last = self.entries[-1] if self.entries else None
        # An earlier result holds only while neither the chain's end nor the stored head has moved.
        if last is None or (last.seq, last.hash) != self.head:
            return None
        if previous.get((self.case_id, *self.head)):
            return CaseVerification(self.case_id, None, last.seq, *self.head)
        return None


def _open_snapshot(conn: Any) -> None:
    if conn.dialect.name == "postgresql":
        # One snapshot for the whole read, so chains and heads agree while writers keep appending.
        conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)


def _verify_range(
    url: str, params: EvidenceParams, case_range: tuple[str, str | None], parent: int
) -> list[CaseVerification]:
    """Worker process: verify every chain in scope whose case id is in `case_range` against its stored head.
    Stops early if the report process (`parent`) is gone, so a killed report leaves no worker scanning on."""
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            _open_snapshot(conn)
            with conn.begin():
                query = _query(params, every_row=True, case_range=case_range)
                rows = conn.execution_options(yield_per=STREAM_BATCH).execute(query)
                return list(verify_rows(_while_alive(rows, parent)))
    finally:
        engine.dispose()


def _while_alive(rows: Iterable[Any], parent: int) -> Iterator[Any]:
    for number, row in enumerate(rows):
        if number % STREAM_BATCH == 0 and os.getppid() != parent:
            return
        yield row


class _ParallelVerify:
    """Chains of the report's scope split into contiguous case-id ranges, one worker process each."""

    def __init__(self, store: Store, params: EvidenceParams, case_ids: list[str], cores: int) -> None:
        workers = max(1, min(cores, MAX_VERIFY_WORKERS))
        step = -(-len(case_ids) // workers)
        bounds = [case_ids[i] for i in range(0, len(case_ids), step)]
        ranges = [(low, bounds[i + 1] if i + 1 < len(bounds) else None) for i, low in enumerate(bounds)]
        # spawn: a forked child would share the parent's open database connections.
        self._pool = ProcessPoolExecutor(len(ranges), mp_context=multiprocessing.get_context("spawn"))
        url = store.engine.url.render_as_string(hide_password=False)
        self._jobs: list[Future[list[CaseVerification]]] = [
            self._pool.submit(_verify_range, url, params, case_range, os.getpid()) for case_range in ranges
        ]

    def results(self) -> dict[str, CaseVerification]:
        try:
            return {check.case_id: check for job in self._jobs for check in job.result()}
        finally:
            self._pool.shutdown()


def _matching(
    store: Store, found: dict[str, CaseVerification], heads: dict[str, tuple[int, str]]
) -> dict[str, CaseVerification]:
    """The workers' results for the chains whose head they saw as this pass did. A chain that grew between
    the two reads is verified again here; one that keeps moving stays reported as not verified."""

    def same(case_id: str) -> bool:
        check = found.get(case_id)
        return check is not None and (check.head_seq, check.head_hash) == heads[case_id]

    moved = [case_id for case_id in heads if not same(case_id)]
    if moved:
        found.update({check.case_id: check for check in store.verify(moved).cases})
    return {case_id: found[case_id] for case_id in heads if same(case_id)}


def _cases_in_scope(store: Store, params: EvidenceParams) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(_in_scope(params).order_by(ledger.c.case_id)).scalars())


def evidence_from_store(
    store: Store,
    params: EvidenceParams,
    *,
    verify: VerifyMode = "full",
    previous: EvidenceReport | None = None,
    public_key: PublicKey | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    cores: int | None = None,
) -> EvidenceReport:
    """The report for `params` from `store`, streaming the ledger once. `progress(done, total)` hears of each
    case read (total is known when chains are verified, else None).

    verify="full" re-checks every chain in the period against its stored head: in the same pass for a small
    scope or on a machine of two usable cores or fewer (`cores`, found when not given), else in worker
    processes (one per core) that stream the chains while this pass reads the rest.
    verify="previous" reuses the results of an earlier report (`previous`) for chains whose end is the
    head that report found intact, and marks the rest not verified; verify="none" checks nothing.

    The report cites the newest signed checkpoint of its scope, its signature checked with `public_key`, and
    (unless verify="none") checks that the report's cases still extend the heads it committed.
    """
    if verify == "previous" and previous is None:
        raise ValueError("verify='previous' needs the earlier report to take results from")
    carried = {}
    if verify == "previous" and previous is not None:
        carried = {
            (c.case_id, c.head_seq, c.head_hash): c.result == "ok"
            for c in previous.integrity.heads
            if c.head_seq is not None and c.head_hash is not None
        }
    builder = EvidenceBuilder(params)
    current: _Case | None = None
    parallel = None
    total: int | None = None
    done = 0
    if verify == "full":
        scope = _cases_in_scope(store, params)
        total = len(scope)
        cores = usable_cores() if cores is None else cores
        if verify_in_workers(len(scope), cores):
            parallel = _ParallelVerify(store, params, scope, cores)
    inline = verify == "full" and parallel is None
    heads: dict[str, tuple[int, str]] = {}  # what this pass saw, for matching the workers' results

    def flush(case: _Case) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)
        check = case.verification(carried)
        if case.unparsed and check is None:
            problem = LedgerProblem(None, f"{case.unparsed} entries no longer parse (edited)")
            check = CaseVerification(case.case_id, problem, len(case.entries), *case.head)
        if builder.add_case(case.entries, check) and parallel is not None:
            heads[case.case_id] = case.head

    with store.engine.connect() as conn:
        _open_snapshot(conn)
        with conn.begin():
            rows = conn.execution_options(yield_per=STREAM_BATCH).execute(_query(params, every_row=inline))
            for row in rows:
                if current is None or row[0] != current.case_id:
                    if current is not None:
                        flush(current)
                    current = _Case(row[0], (row[8], row[9]), inline)
                current.add(row)
            if current is not None:
                flush(current)
    if parallel is not None:
        builder.verified(_matching(store, parallel.results(), heads))
    method = {"full": "verified", "previous": "carried_forward", "none": "not_verified"}[verify]
    checkpoint = _citation(store, params, builder.case_ids(), public_key, check=verify != "none")
    return builder.report(method, previous.generated_at if previous is not None else None, checkpoint)


def _citation(
    store: Store, params: EvidenceParams, case_ids: list[str], public_key: PublicKey | None, *, check: bool
) -> CheckpointCitation | None:
    cited = cite_checkpoint(store, params.tenant, case_ids, public_key, check=check)
    if cited is None:
        return None
    row = cited.stored
    verifier = None if public_key is None else public_key.verifier(row.origin)
    return CheckpointCitation(
        origin=row.origin,
        number=row.number,
        tree_size=row.tree_size,
        cases=row.cases,
        signed_at=row.created_at,
        root_hash=cited.root_hash,
        note=row.note,
        signature=cited.signature,
        key_fingerprint=row.key_fingerprint,
        verifier_key=None if verifier is None or cited.checkpoint is None else verifier.encode(),
        signature_check=cited.signature_check,
        covered=cited.covered if check and cited.checkpoint is not None else None,
        problems=cited.problems,
    )
