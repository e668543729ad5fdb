"""The `soctriage` command line: parse, call, render. Decisions live in the modules it calls.

Exit codes (DESIGN §7): 0 ok, 1 a check failed, 2 bad input or usage (the message names file, record, field).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError
from soctriage.service import event_loop, intake
from soctriage.service.cli_cases import register as register_cases
from soctriage.service.cli_chat import register as register_chat
from soctriage.service.cli_common import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    Progress,
    announce_store,
    fail,
    open_store,
    render_table,
    require_store,
)
from soctriage.service.cli_eval import eval_app
from soctriage.service.cli_ledger import register as register_ledger
from soctriage.service.cli_quarantine import register as register_quarantine
from soctriage.service.cli_report import register as register_report
from soctriage.service.cli_rules import register as register_rules
from soctriage.service.cli_service import register as register_service
from soctriage.service.config import ConfigError, Settings, settings_problem
from soctriage.service.domain import ALERT_FORMATS, Alert
from soctriage.service.ingest import Rejection, normalize_bytes
from soctriage.service.ingest.limits import MAX_PERSON_CHARS, surrogate_in
from soctriage.service.store import Store
from typer.core import TyperGroup

if TYPE_CHECKING:
    from soctriage.agents.run import ActionView, Triager, TriageResult


class Commands(TyperGroup):
    """The command group: a setting that cannot be used ends any command with one line naming it and exit 2,
    wherever it is found (reading the environment, loading the policy, intel or model), never a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Python hands over argv bytes that are not UTF-8 as lone surrogates, which no ledger, database or
        # terminal can take: a reason, a name or a question must be text.
        for number, arg in enumerate(args, start=1):
            if surrogate_in(arg) is not None:
                raise fail(f"argument {number} ({ascii(arg)[1:-1][:80]}): not UTF-8 text")
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise fail(str(exc)) from exc
        except SettingsError as exc:
            raise fail(settings_problem(exc)) from exc
        except ValidationError as exc:
            if exc.title != Settings.__name__:
                raise
            raise fail(settings_problem(exc)) from exc


app = typer.Typer(
    cls=Commands,
    help="Agentic triage of EDR alerts with a tamper-evident case ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
register_ledger(app)
register_cases(app)
app.add_typer(eval_app, name="eval")
register_service(app)
register_chat(app)
register_report(app)
register_rules(app)
register_quarantine(app)

FORMAT_CHOICES = ("auto", *ALERT_FORMATS)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"soctriage {metadata.version('soctriage')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """Agentic triage of EDR alerts with a tamper-evident case ledger. Results go to stdout; the store in use,
    progress and problems go to stderr."""


FormatOption = Annotated[
    str, typer.Option("--format", "-f", help=f"input format: {', '.join(FORMAT_CHOICES)}")
]
FilesArgument = Annotated[
    list[str], typer.Argument(help="alert files: a JSON object, an array or JSONL; - is stdin")
]


def check_format(fmt: str) -> str:
    if fmt not in FORMAT_CHOICES:
        raise fail(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMAT_CHOICES)}")
    return fmt


def read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    path = Path(name)
    if not path.is_file():
        raise fail(f"{name}: no such file")
    return path.read_bytes()


class Intake:
    """Reads alert files through the intake every face shares (service/intake.py), quarantining every rejected
    record and counting them for the exit code."""

    def __init__(self, store: Store, settings: Settings, fmt: str) -> None:
        self.store, self.settings, self.fmt = store, settings, check_format(fmt)
        self.rejected = 0
        self.empty: list[str] = []

    def alerts(self, names: list[str]) -> Iterator[Alert]:
        for name in names:
            source = "<stdin>" if name == "-" else name
            alerts, rejections = intake.read_records(
                read_input(name), source, self.fmt, self.settings.max_record_bytes
            )
            if not alerts and not rejections:
                # An empty file is most often the wrong file, or an export that failed: it must not pass.
                typer.echo(f"{source}: {intake.EMPTY_INPUT}", err=True)
                self.empty.append(source)
            for rejected in intake.quarantine(self.store, rejections, self.settings.tenant):
                typer.echo(rejected.message, err=True)
            self.rejected += len(rejections)
            yield from alerts

    def finish(self) -> None:
        if self.rejected:
            typer.echo(f"{self.rejected} record(s) rejected and kept in quarantine", err=True)
        if self.rejected or self.empty:
            raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def normalize(files: FilesArgument, fmt: FormatOption = "auto") -> None:
    """Print every input record as a normalized Alert (JSON lines). Rejected records are quarantined."""
    settings = Settings()
    with open_store(settings, create=True) as store:
        intake = Intake(store, settings, fmt)
        for alert in intake.alerts(files):
            typer.echo(alert.model_dump_json())
    intake.finish()


def _triager(settings: Settings) -> Triager:
    # Imported here: the graph stack is slow to import and `normalize`/`ledger` do not need it.
    from soctriage.agents.run import Triager

    return Triager(settings)


def _action_text(action: ActionView) -> str:
    return f"{action.id}:{action.tool}({action.target})={action.decision}/{action.status}"


def _result_line(result: TriageResult) -> str:
    confidence = f"{result.confidence:.2f}" if result.confidence is not None else "-"
    parts = [
        result.case_id,
        result.status,
        result.disposition or "-",
        f"severity={result.severity or '-'}",
        f"confidence={confidence}",
        f"techniques={','.join(result.techniques) or '-'}",
        f"actions=[{'; '.join(_action_text(a) for a in result.actions)}]",
    ]
    if result.duplicate:
        parts.append("(re-delivered alert: existing case)")
    return "  ".join(parts)


@app.command()
def triage(
    files: FilesArgument,
    fmt: FormatOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON result object per alert")] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            help="alerts triaged at once; results still print in input order (default: SOCTRIAGE_WORKER_CONCURRENCY)",
        ),
    ] = None,
) -> None:
    """Triage alerts from files end to end and write every step to the case ledger."""
    settings = Settings()
    announce_store(settings)
    event_loop.run(_triage_files(settings, files, fmt, as_json, concurrency or settings.worker_concurrency))


async def _triage_files(
    settings: Settings, files: list[str], fmt: str, as_json: bool, concurrency: int
) -> None:
    async with _triager(settings) as triager:
        intake = Intake(triager.store, settings, fmt)
        # Read every record first: the bar needs the total, and normalizing is fast next to triage.
        alerts = list(intake.alerts(files))
        with Progress("triage", len(alerts)) as progress:
            async for result in triager.triage_many(alerts, concurrency=concurrency):
                progress.advance()
                typer.echo(result.model_dump_json() if as_json else _result_line(result))
    intake.finish()


@app.command()
def demo() -> None:
    """Triage the bundled sample alerts on the embedded default and print a summary table."""
    settings = Settings()
    announce_store(settings)
    event_loop.run(_demo(settings))


async def _demo(settings: Settings) -> None:
    samples = sorted(
        p for p in resources.files("soctriage.service").joinpath("samples").iterdir() if p.is_file()
    )
    rows = []
    async with _triager(settings) as triager:
        for sample in samples:
            for item in normalize_bytes(sample.read_bytes(), sample.name):
                if isinstance(item, Rejection):
                    raise fail(f"bundled sample rejected: {item.message()}", EXIT_CHECK_FAILED)
                result = await triager.triage(item)
                rows.append((sample.name, item.title, result))
    typer.echo(f"soctriage demo: {len(rows)} sample alerts, model {settings.model}, store {settings.home}/\n")
    header = ("case", "sample", "status", "disposition", "sev", "conf", "actions (tool=status)")
    table = [
        (
            r.case_id,
            name.removesuffix(".json").removesuffix(".jsonl")[:34],
            r.status,
            r.disposition or "-",
            r.severity or "-",
            f"{r.confidence:.2f}" if r.confidence is not None else "-",
            ", ".join(f"{a.tool}={a.status}" for a in r.actions) or "-",
        )
        for name, _, r in rows
    ]
    typer.echo(render_table(header, table))
    pending = [
        (r.case_id, a.id, a.tool) for _, _, r in rows for a in r.actions if a.status == "awaiting_approval"
    ]
    typer.echo("\nNext: soctriage cases show CASE --ledger   |   soctriage ledger verify --all")
    if pending:
        case_id, action_id, tool = pending[0]
        typer.echo(
            f"Pending approvals: {len(pending)}, e.g. soctriage approve {case_id} {action_id} --by you  ({tool})"
        )


@app.command()
def approve(
    case_id: Annotated[str, typer.Argument(help="case id")],
    action_id: Annotated[str, typer.Argument(help="action id, e.g. A2 (see cases show)")],
    by: Annotated[str, typer.Option("--by", help="who decides (recorded in the ledger)")],
    reject: Annotated[bool, typer.Option("--reject", help="reject instead of approve")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="why")] = None,
) -> None:
    """Approve (or reject) one pending action; the paused triage resumes and carries it out."""
    if not by.strip():
        raise fail("--by: give the name of the person deciding")
    if len(by.strip()) > MAX_PERSON_CHARS:
        raise fail(f"--by: {len(by.strip())} characters, limit is {MAX_PERSON_CHARS}")
    settings = Settings()
    require_store(settings)
    event_loop.run(_approve(settings, case_id, action_id, by.strip(), not reject, reason))


async def _approve(
    settings: Settings, case_id: str, action_id: str, by: str, ok: bool, reason: str | None
) -> None:
    from soctriage.agents.lifecycle import Decision, NotDecidable

    decision = Decision(action_id=action_id, approve=ok, by=by, reason=reason)
    async with _triager(settings) as triager:
        try:
            result = await triager.decide(case_id, decision)
        except NotDecidable as exc:
            if exc.action is not None:
                # The action exists and the decider had the right to act (as the API's approver has): the
                # refused attempt belongs in the case's transcript.
                triager.refuse(case_id, decision, str(exc))
            raise fail(str(exc)) from exc
    typer.echo(_result_line(result))
    decided = next(a for a in result.actions if a.id == action_id)
    if decided.status == "expired":
        raise fail(f"{action_id}: the approval request had expired; nothing was done", EXIT_CHECK_FAILED)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
