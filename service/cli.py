"""The `soctriage` command line: parse, call, render. Decisions live in the modules it calls."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from soctriage.service.config import Settings
from soctriage.service.domain import ALERT_FORMATS
from soctriage.service.ingest import Rejection, normalize_bytes
from soctriage.service.store import Store

app = typer.Typer(help="Agentic triage of EDR alerts with a tamper-evident case ledger.", no_args_is_help=True)
ledger_app = typer.Typer(help="Verify and export case ledgers.", no_args_is_help=True)
cases_app = typer.Typer(help="Inspect cases.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(cases_app, name="cases")

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2
FORMAT_CHOICES = ("auto", *ALERT_FORMATS)

FormatOption = Annotated[
    str, typer.Option("--format", "-f", help=f"input format: {', '.join(FORMAT_CHOICES)}", show_default=True)
]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


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


@app.command()
def normalize(
    files: Annotated[list[str], typer.Argument(help="alert files: JSON object, array or JSONL; - for stdin")],
    fmt: FormatOption = "auto",
) -> None:
    """Print every input record as a normalized Alert (JSON lines). Rejected records are quarantined."""
    check_format(fmt)
    settings = Settings()
    rejected = 0
    with Store.open(settings) as store:
        for name in files:
            source = "<stdin>" if name == "-" else name
            for item in normalize_bytes(read_input(name), source, fmt, settings.max_record_bytes):
                if isinstance(item, Rejection):
                    rejected += 1
                    store.quarantine(item)
                    typer.echo(item.message(), err=True)
                else:
                    typer.echo(item.model_dump_json())
    if rejected:
        typer.echo(f"{rejected} record(s) rejected and kept in quarantine", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)


@ledger_app.command("verify")
def ledger_verify(
    case_ids: Annotated[list[str] | None, typer.Argument(help="case ids to verify")] = None,
    all_cases: Annotated[bool, typer.Option("--all", help="verify every case")] = False,
) -> None:
    """Exit 0 when every chain is intact; 1 naming the case and first bad seq otherwise."""
    if not case_ids and not all_cases:
        raise fail("ledger verify: name one or more CASE ids, or pass --all")
    if case_ids and all_cases:
        raise fail("ledger verify: give CASE ids or --all, not both")
    with Store.open(Settings()) as store:
        report = store.verify(None if all_cases else case_ids)
    for result in report.cases:
        if result.ok:
            typer.echo(f"{result.case_id}: ok ({result.entries} entries, head {result.head_hash})")
        else:
            typer.echo(f"{result.case_id}: TAMPERED at seq {result.first_bad_seq}: {result.reason}", err=True)
    typer.echo(f"{report.verified} case(s) verified, {report.failed} failed")
    raise typer.Exit(EXIT_OK if report.ok else EXIT_CHECK_FAILED)


def main() -> None:
    app()
