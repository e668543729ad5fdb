"""Run a suite through the real triage graph, one isolated store per run, resumable after interruption.

A run folder holds `run.json` (what ran), `cases.jsonl` (the resolved cases, so a replay needs no fixtures),
`home/` (the run's own SOCTRIAGE_HOME: store and checkpoints), `ledgers/<case>.jsonl` (every alert's full
ledger export) and `results.jsonl` (one scored record per alert, appended as each finishes). Re-running into
the same folder skips the ids already in `results.jsonl`; an alert interrupted half-way resumes from its
checkpoint. Response tools always run in dry-run: the simulator records what would have happened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
from pydantic import BaseModel, Field
from soctriage.evals.record import ActionRecord, CaseRecord, ledger_facts
from soctriage.evals.suite import Suite, SuiteCase, SuiteError, SuiteSpec
from soctriage.service.config import Settings
from soctriage.service.domain import Alert
from soctriage.service.ingest import Rejection, normalize_bytes

if TYPE_CHECKING:
    from soctriage.agents.run import Triager, TriageResult
    from soctriage.evals.frozen import FrozenTools

RUN_FILE, CASES_FILE, RESULTS_FILE, LEDGERS_DIR, HOME_DIR = (
    "run.json",
    "cases.jsonl",
    "results.jsonl",
    "ledgers",
    "home",
)
EVAL_TENANT = "eval"
Progress = Callable[[int, int, CaseRecord], None]


class RunDirError(ValueError):
    """The output folder holds a different run (another suite or model)."""


class RunInfo(BaseModel):
    suite: str
    spec: SuiteSpec
    origin: str
    model: str
    started_at: datetime
    dry_run: bool = True
    cases: int
    skipped: list[str] = Field(default_factory=list)
    attribution: str | None = None
    replay_of: str | None = Field(default=None, description="run folder whose tool results were frozen")


def prepare(suite: Suite) -> list[tuple[SuiteCase, Alert]]:
    """Normalize every case's alert before anything runs: a bad suite fails fast, naming the case."""
    prepared = []
    for case in suite.cases:
        items = list(normalize_bytes(case.alert_bytes(), f"{suite.spec.name}:{case.id}"))
        rejected = [i for i in items if isinstance(i, Rejection)]
        if rejected:
            raise SuiteError(f"case {case.id}: field alert: {rejected[0].message()}")
        if len(items) != 1:
            raise SuiteError(f"case {case.id}: field alert: the record holds {len(items)} alerts, expected 1")
        alert = items[0]
        assert isinstance(alert, Alert)
        # The store keeps one case per alert id; vendor samples reuse ids, and every suite case must be judged
        # on its own, so the id is namespaced by the case (the raw record is untouched).
        alert = alert.model_copy(update={"id": f"{alert.id}@{safe_name(case.id)}"})
        prepared.append((case, alert))
    return prepared


def safe_name(case_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", case_id)[:120]


def read_records(out: Path) -> list[CaseRecord]:
    """The records of a run folder; a line cut short by a crash is dropped (that alert is simply redone)."""
    path = out / RESULTS_FILE
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(CaseRecord.model_validate_json(line))
            except ValueError:
                continue
    return records


def read_run(out: Path) -> tuple[RunInfo, list[SuiteCase]]:
    """The run description and resolved cases of a finished (or interrupted) triage run folder."""
    if not (out / RUN_FILE).is_file():
        raise RunDirError(f"{out}: not a run folder (no {RUN_FILE})")
    info = RunInfo.model_validate_json((out / RUN_FILE).read_text(encoding="utf-8"))
    if info.spec.kind != "triage":
        raise RunDirError(f"{out}: a {info.spec.kind} run, not a triage run (only those are replayed)")
    lines = (out / CASES_FILE).read_text(encoding="utf-8").splitlines()
    return info, [SuiteCase.model_validate_json(line) for line in lines if line.strip()]


def _start(out: Path, suite: Suite, model: str, replay_of: str | None) -> RunInfo:
    out.mkdir(parents=True, exist_ok=True)
    if (out / RUN_FILE).is_file():
        info = RunInfo.model_validate_json((out / RUN_FILE).read_text(encoding="utf-8"))
        if (info.suite, info.model) != (suite.spec.name, model):
            raise RunDirError(
                f"{out} holds a run of suite {info.suite!r} with model {info.model!r}; choose another --out"
                " or pass --fresh"
            )
        return info
    info = RunInfo(
        suite=suite.spec.name,
        spec=suite.spec,
        origin=suite.origin,
        model=model,
        started_at=datetime.now(UTC),
        cases=len(suite.cases),
        skipped=suite.skipped,
        attribution=suite.spec.attribution,
        replay_of=replay_of,
    )
    (out / RUN_FILE).write_text(info.model_dump_json(indent=2), encoding="utf-8")
    (out / CASES_FILE).write_text(
        "".join(case.model_dump_json() + "\n" for case in suite.cases), encoding="utf-8"
    )
    return info


def eval_settings(out: Path, model: str, base: Settings | None = None) -> Settings:
    """The base settings (environment) with this run's own home, the chosen model and dry-run forced on."""
    base = base or Settings()
    return base.model_copy(
        update={"home": out / HOME_DIR, "model": model, "dry_run": True, "database_url": None}
    )


async def run_suite(
    suite: Suite,
    out: Path,
    *,
    model: str,
    concurrency: int = 1,
    base_settings: Settings | None = None,
    http_client: httpx2.AsyncClient | None = None,
    frozen: FrozenTools | None = None,
    progress: Progress | None = None,
) -> list[CaseRecord]:
    """Triage every case not yet in `out/results.jsonl`; return all records of the run, in suite order."""
    from soctriage.agents.run import Triager
    from soctriage.service.store.transcript import export_transcript

    prepared = prepare(suite)
    _start(out, suite, model, frozen.origin if frozen else None)
    kept = read_records(out)
    # Rewrite without a line cut short by a crash, so new results do not land on the end of it.
    (out / RESULTS_FILE).write_text("".join(r.model_dump_json() + "\n" for r in kept), encoding="utf-8")
    done = {r.id for r in kept}
    todo = [(case, alert) for case, alert in prepared if case.id not in done]
    settings = eval_settings(out, model, base_settings)
    (out / LEDGERS_DIR).mkdir(exist_ok=True)
    gate = asyncio.Semaphore(max(1, concurrency))
    finished = len(done)

    async with Triager(settings, http_client=http_client, group=False) as triager:
        if frozen is not None:
            triager.deps = dataclasses.replace(triager.deps, registry=frozen.wrap(triager.deps.registry))

        async def one(case: SuiteCase, alert: Alert) -> None:
            nonlocal finished
            async with gate:
                record = await _triage_case(triager, case, alert)
                if record.case_id:
                    text = export_transcript(triager.store, record.case_id, "jsonl")
                    (out / LEDGERS_DIR / f"{safe_name(case.id)}.jsonl").write_text(text, encoding="utf-8")
                with (out / RESULTS_FILE).open("a", encoding="utf-8") as fh:
                    fh.write(record.model_dump_json() + "\n")
                finished += 1
                if progress:
                    progress(finished, len(prepared), record)

        await asyncio.gather(*(one(case, alert) for case, alert in todo))
    order = {case.id: n for n, case in enumerate(suite.cases)}
    records = {r.id: r for r in read_records(out) if r.id in order}
    return sorted(records.values(), key=lambda r: order[r.id])


async def _triage_case(triager: Triager, case: SuiteCase, alert: Alert) -> CaseRecord:
    started = time.perf_counter()
    base: dict[str, Any] = {"id": case.id, "note": case.note, "expected": case.expected, "alert_id": alert.id}
    try:
        result = await triager.triage(alert, tenant=EVAL_TENANT)
    except Exception as exc:  # one broken alert must not sink the run; the report counts it
        wall = (time.perf_counter() - started) * 1000
        return CaseRecord(**base, wall_ms=round(wall, 3), error=f"{type(exc).__name__}: {exc}")
    wall = (time.perf_counter() - started) * 1000
    facts = ledger_facts(triager.store.entries(result.case_id))
    outside = facts.pop("outside_scope")
    return CaseRecord(
        **base,
        **_decision(result, facts["guard_decisions"], outside),
        **facts,
        wall_ms=round(wall, 3),
    )


def _decision(
    result: TriageResult, guard_decisions: list[dict[str, Any]], outside: dict[str, list[str]]
) -> dict[str, Any]:
    by_action = {d.get("action_id"): d for d in guard_decisions}
    return {
        "case_id": result.case_id,
        "status": result.status,
        "disposition": result.disposition,
        "severity": result.severity,
        "confidence": result.confidence,
        "techniques": list(result.techniques),
        "ledger_entries": result.ledger_entries,
        "actions": [
            ActionRecord(
                id=a.id,
                tool=a.tool,
                target=a.target,
                tier=by_action.get(a.id, {}).get("tier"),
                decision=a.decision,
                status=a.status,
                rule_id=by_action.get(a.id, {}).get("rule_id"),
                reason=a.reason,
                outside_scope=outside.get(a.id, []),
            )
            for a in result.actions
        ],
    }
