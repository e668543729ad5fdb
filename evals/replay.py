"""Replay a past run with another model or prompt version, tool results frozen from its ledgers, and diff it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
from soctriage.evals.compare import Comparison, compare_reports
from soctriage.evals.frozen import FrozenTools
from soctriage.evals.kinds import run_triage_suite
from soctriage.evals.report import build_report
from soctriage.evals.runner import (
    LEDGERS_DIR,
    Progress,
    RunDirError,
    read_records,
    read_run,
)
from soctriage.evals.suite import Suite
from soctriage.service.config import Settings


def model_slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"


async def replay_run(
    run_dir: Path,
    model: str,
    out: Path | None = None,
    *,
    strict_tools: bool = False,
    concurrency: int = 1,
    base_settings: Settings | None = None,
    http_client: httpx2.AsyncClient | None = None,
    progress: Progress | None = None,
) -> tuple[Path, dict, Comparison, FrozenTools]:
    """Run the alerts of `run_dir` again with `model`; returns (folder, report, diff against the original, tools)."""
    info, cases = read_run(run_dir)
    ledgers = run_dir / LEDGERS_DIR
    if not ledgers.is_dir():
        raise RunDirError(f"{run_dir}: no {LEDGERS_DIR}/ folder to freeze tool results from")
    frozen = FrozenTools.from_ledgers(ledgers, strict=strict_tools)
    suite = Suite(spec=info.spec, cases=cases, skipped=info.skipped, origin=f"replay of {run_dir}")
    out = out or run_dir / "replays" / model_slug(model)
    report = await run_triage_suite(
        suite,
        out,
        model=model,
        concurrency=concurrency,
        base_settings=base_settings,
        http_client=http_client,
        frozen=frozen,
        progress=progress,
    )
    original = build_report(info, info.spec, read_records(run_dir), run_dir)
    return out, report, compare_reports(original, report), frozen
