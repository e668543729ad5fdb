"""Suite kinds: what the `kind` a suite.yaml declares means to `eval run` and `eval baseline`. A kind is its
cases (data), how a run of them goes, its scorer and its report; every kind's report.json has the shape that
`eval compare` reads (metrics, gates, one row per scored item with its decision).

- triage: alerts and the decisions expected of them (suite.py); each alert goes through the graph
  (runner.py); scored by scorers.py; reported by report.py.
- chat: cases and the questions to ask of them (chat_suite.py); the builtin triages the cases and the model
  under test answers; each answer scored by chat_suite.py's `score_answer`; reported by chat_report.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
from soctriage.evals.chat_report import build_chat_report, check_chat_gates, write_chat_reports
from soctriage.evals.chat_suite import ChatSuite, QuestionRecord, load_chat_suite, run_chat_suite
from soctriage.evals.frozen import FrozenTools
from soctriage.evals.record import CaseRecord
from soctriage.evals.report import build_report, check_gate_names, write_reports
from soctriage.evals.runner import Progress, read_run, run_suite
from soctriage.evals.suite import Suite, load_spec, load_suite, suite_dir
from soctriage.service.config import Settings

AnySuite = Suite | ChatSuite
# Called after each alert or question: (done, total, its record).
AnyProgress = Callable[[int, int, CaseRecord | QuestionRecord], None]


def load_any_suite(name_or_path: str) -> AnySuite:
    """A suite of the kind its suite.yaml declares, its gates checked against what that kind measures; raises
    SuiteError naming the file, line and field."""
    folder = suite_dir(name_or_path)
    spec = load_spec(folder)
    if spec.kind == "chat":
        check_chat_gates(spec)
        return load_chat_suite(folder, spec)
    suite = load_suite(str(folder))
    check_gate_names(spec)
    return suite


def size(suite: AnySuite) -> tuple[int, str]:
    """How many items a run scores, and what they are."""
    if isinstance(suite, ChatSuite):
        return suite.questions, "questions"
    return len(suite.cases), "alerts"


async def run_any_suite(
    suite: AnySuite,
    out: Path,
    *,
    model: str,
    concurrency: int = 1,
    base_settings: Settings | None = None,
    http_client: httpx2.AsyncClient | None = None,
    progress: AnyProgress | None = None,
) -> dict[str, Any]:
    """Run `suite` into `out` with `model`, score it and write its reports; returns report.json's content.
    `base_settings` is used as given (apply the suite's environment with `suite.settings` first). A triage run
    resumes what `out` holds and takes `concurrency` alerts at once; a chat run starts afresh."""
    if isinstance(suite, ChatSuite):
        questions = await run_chat_suite(
            suite,
            out,
            model=model,
            base_settings=base_settings,
            http_client=http_client,
            progress=progress,
        )
        report = build_chat_report(suite.spec, model, questions, out)
        write_chat_reports(out, report)
        return report
    return await run_triage_suite(
        suite,
        out,
        model=model,
        concurrency=concurrency,
        base_settings=base_settings,
        http_client=http_client,
        progress=progress,
    )


async def run_triage_suite(
    suite: Suite,
    out: Path,
    *,
    model: str,
    concurrency: int = 1,
    base_settings: Settings | None = None,
    http_client: httpx2.AsyncClient | None = None,
    frozen: FrozenTools | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """`run_suite`, then score the run and write its reports; returns report.json's content."""
    records = await run_suite(
        suite,
        out,
        model=model,
        concurrency=concurrency,
        base_settings=base_settings,
        http_client=http_client,
        frozen=frozen,
        progress=progress,
    )
    info, _ = read_run(out)
    report = build_report(info, suite.spec, records, out)
    write_reports(out, report)
    return report
