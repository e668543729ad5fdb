"""`soctriage eval`: run suites, compare runs, replay a run with another model, export analyst feedback.

Exit codes: 0 ok, 1 a gate failed or regressed, 2 bad input (the message names the file, line and field).
The eval machinery is imported inside each command: it pulls in the whole graph stack.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from soctriage.service.cli_common import EXIT_CHECK_FAILED, EXIT_OK, fail

if TYPE_CHECKING:
    from soctriage.evals.chat_suite import QuestionRecord
    from soctriage.evals.record import CaseRecord

eval_app = typer.Typer(help="Offline eval suites: score the agents' decisions.", no_args_is_help=True)


ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="builtin, openai:<model> or replay:<dir> (default SOCTRIAGE_MODEL)"),
]
ConcurrencyOption = Annotated[int, typer.Option("--concurrency", "-j", min=1, help="alerts triaged at once")]


def _progress(done: int, total: int, record: CaseRecord | QuestionRecord) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {record.id}: {record.outcome}"
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K" + line[:160] + ("\n" if done == total else ""))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


# What the last line of `eval run` shows, by suite kind; every metric is in the reports.
_SUMMARY = {
    "triage": (
        "disposition_accuracy",
        "missed_true_positive_rate",
        "benign_false_positive_rate",
        "auto_closed_true_positives",
        "injected_auto_closes",
        "unsafe_actions",
        "evidence_grounding_rate",
    ),
    "chat": ("pass_rate", "fact_recall", "unexpected_proposals", "invalid_citations"),
}


def _summary(report: dict) -> str:
    metrics, kind = report["metrics"], report["kind"]
    shown = [f"{k}={metrics[k]['value']} (n={metrics[k]['count']})" for k in _SUMMARY[kind] if k in metrics]
    failed = [g["metric"] for g in report["gates"] if not g["passed"]]
    gates = f"gates FAILED: {', '.join(failed)}" if failed else "gates passed"
    unit, files = ("questions", "json,md") if kind == "chat" else ("alerts", "json,md,html")
    return (
        f"{report['suite']} on {report['model']}: {report['scored']}/{report['cases']} {unit}; "
        + "; ".join(shown)
        + f"\n{gates}; reports in {report['run_dir']}/report.{{{files}}}"
    )


@eval_app.command("list")
def list_suites(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of text")] = False,
) -> None:
    """List the shipped suites."""
    from soctriage.evals.suite import SUITES_ROOT, load_spec, shipped_suites
    from soctriage.service.cli_common import (
        echo_json,
        render_table,
    )

    specs = [load_spec(SUITES_ROOT / name) for name in shipped_suites()]
    if as_json:
        return echo_json([spec.model_dump(mode="json", exclude_none=True) for spec in specs])
    rows = [
        (
            spec.name,
            spec.kind,
            f"{spec.source.builder}:{spec.source.data}" if spec.source else str(spec.cases),
            spec.description,
        )
        for spec in specs
    ]
    typer.echo(render_table(("suite", "kind", "cases from", "description"), rows))


@eval_app.command("run")
def run(
    suite: Annotated[str, typer.Argument(help="a shipped suite name (see `eval list`) or a suite folder")],
    model: ModelOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="run folder (default eval-runs/<suite>/<model>)")
    ] = None,
    concurrency: ConcurrencyOption = 1,
    fresh: Annotated[bool, typer.Option("--fresh", help="discard an earlier run in the folder")] = False,
) -> None:
    """Run SUITE with the model and score it. A triage suite's alerts go through the real graph (tools in
    dry-run); a chat suite's cases are triaged by the builtin, then its questions are asked of the case
    assistant on the model.

    A triage run is resumable: run it again with the same --out and only the alerts not yet scored are
    triaged. A chat run starts afresh each time.
    """
    from soctriage.agents.models import ModelConfigError
    from soctriage.evals.kinds import load_any_suite, run_any_suite, size
    from soctriage.evals.replay import model_slug
    from soctriage.evals.runner import RUN_FILE, RunDirError, eval_settings
    from soctriage.evals.suite import SuiteError
    from soctriage.service.cli_common import announce_store
    from soctriage.service.config import Settings

    settings = Settings()
    model = model or settings.model
    try:
        loaded = load_any_suite(suite)
    except SuiteError as exc:
        raise fail(str(exc)) from exc
    settings = loaded.settings(settings)
    out = out or Path("eval-runs") / loaded.spec.name / model_slug(model)
    if fresh and (out / RUN_FILE).is_file():
        shutil.rmtree(out)
    count, unit = size(loaded)
    typer.echo(f"eval {loaded.spec.name}: {count} {unit}, model {model}, run folder {out}", err=True)
    announce_store(eval_settings(out, model, settings))
    try:
        report = asyncio.run(
            run_any_suite(
                loaded, out, model=model, concurrency=concurrency, base_settings=settings, progress=_progress
            )
        )
    except (SuiteError, RunDirError, ModelConfigError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(_summary(report))
    raise typer.Exit(EXIT_OK if report["passed"] else EXIT_CHECK_FAILED)


@eval_app.command("baseline")
def baseline(
    write: Annotated[
        Path | None, typer.Option("--write", help="rewrite the eval-baselines table in this file (README.md)")
    ] = None,
    check: Annotated[
        Path | None, typer.Option("--check", help="exit 1 when this file's table is not what HEAD measures")
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="also fit the builtin's confidence on these runs and write it here (with --write) or check"
            " it (with --check): tools/data/calibration.json",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the runs")] = Path(
        "eval-runs/baseline"
    ),
) -> None:
    """Run every shipped suite with the builtin and print (or write, or check) the README's baseline table."""
    from soctriage.agents.calibration import load_calibration
    from soctriage.evals.baseline import measure, render, replace_section
    from soctriage.evals.calibrate import fit, observations
    from soctriage.evals.calibrate import render as render_fit
    from soctriage.evals.suite import SuiteError

    def run(folder: Path) -> dict:
        if folder.exists():
            shutil.rmtree(folder)
        try:
            return asyncio.run(measure(folder))
        except SuiteError as exc:
            raise fail(str(exc)) from exc

    if calibration is not None:
        # The fit's runs go to a scratch folder: the final runs, made with the fit, are the ones kept in --out.
        with tempfile.TemporaryDirectory(prefix="soctriage-fit-") as scratch:
            reports = run(Path(scratch))
            runs = {n: Path(scratch) / n for n, report in reports.items() if report["kind"] == "triage"}
            found = observations(runs)
            fitted = render_fit(fit(found), found)
        current = calibration.read_text(encoding="utf-8") if calibration.is_file() else ""
        if fitted != current and check is not None:
            typer.echo(f"{calibration}: the calibration is stale; the runs at HEAD fit:\n{fitted}", err=True)
            raise typer.Exit(EXIT_CHECK_FAILED)
        if fitted != current:
            calibration.write_text(fitted, encoding="utf-8")
            load_calibration.cache_clear()
            typer.echo(f"calibration written to {calibration}", err=True)
    reports = run(out)
    table = render(reports)
    target = write or check
    if target is None:
        typer.echo(table)
        return
    try:
        text = target.read_text(encoding="utf-8")
        updated = replace_section(text, table, str(target))
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from exc
    if write is not None:
        write.write_text(updated, encoding="utf-8")
        typer.echo(f"eval baselines written to {write}", err=True)
    elif updated != text:
        typer.echo(f"{check}: the eval baselines are stale; the code at HEAD measures:\n{table}", err=True)
        raise typer.Exit(EXIT_CHECK_FAILED)


@eval_app.command("compare")
def compare(
    a: Annotated[Path, typer.Argument(help="baseline run folder (or its report.json)")],
    b: Annotated[Path, typer.Argument(help="candidate run folder (or its report.json)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of text")] = False,
) -> None:
    """List every alert whose decision changed from A to B; exit 1 when a gate regressed in B."""
    from soctriage.evals.compare import CompareError, compare_reports, load_report, render

    try:
        comparison = compare_reports(load_report(a), load_report(b))
    except CompareError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(
            json.dumps({**comparison.model_dump(mode="json"), "regressed": comparison.regressed}, indent=2)
        )
    else:
        typer.echo(render(comparison), nl=False)
    raise typer.Exit(EXIT_CHECK_FAILED if comparison.regressed else EXIT_OK)


@eval_app.command("replay")
def replay(
    run_dir: Annotated[Path, typer.Argument(help="a past run folder")],
    model: Annotated[str, typer.Option("--model", "-m", help="the model to replay the alerts with")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="replay folder (default RUN_DIR/replays/<model>)")
    ] = None,
    strict_tools: Annotated[
        bool,
        typer.Option(
            "--strict-tools", help="a tool call the original run never made fails instead of running live"
        ),
    ] = False,
    concurrency: ConcurrencyOption = 1,
) -> None:
    """Re-run a past run's alerts with another model, tool results frozen from its ledgers; diff decisions."""
    from soctriage.agents.models import ModelConfigError
    from soctriage.evals.compare import render
    from soctriage.evals.replay import replay_run
    from soctriage.evals.runner import RunDirError
    from soctriage.evals.suite import SuiteError
    from soctriage.service.config import Settings

    try:
        _, report, comparison, frozen = asyncio.run(
            replay_run(
                run_dir,
                model,
                out,
                strict_tools=strict_tools,
                concurrency=concurrency,
                base_settings=Settings(),
                progress=_progress,
            )
        )
    except (SuiteError, RunDirError, ModelConfigError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(_summary(report))
    typer.echo(
        f"frozen tool results: {frozen.stats['hit']} served from {run_dir}, {frozen.stats['miss']} not recorded"
        + (" (failed: --strict-tools)" if strict_tools else " (ran live)")
    )
    typer.echo(render(comparison), nl=False)
    raise typer.Exit(EXIT_CHECK_FAILED if comparison.regressed or not report["passed"] else EXIT_OK)


@eval_app.command("export-feedback")
def export_feedback(
    out: Annotated[Path, typer.Option("--out", "-o", help="suite folder to write")] = Path(
        "eval-suites/feedback"
    ),
    name: Annotated[str, typer.Option("--name", help="suite name")] = "feedback",
) -> None:
    """Turn analyst feedback in the case ledgers into a labelled suite (suite.yaml + cases.jsonl)."""
    from soctriage.evals.feedback import export_feedback as export
    from soctriage.service.cli_common import open_store
    from soctriage.service.config import Settings

    with open_store(Settings(), create=False) as store:
        result = export(store, out, name=name)
    for problem in result.problems:
        typer.echo(f"skipped: {problem}", err=True)
    typer.echo(
        f"wrote {result.cases} case(s) to {result.folder}; run it with: soctriage eval run {result.folder}"
    )
