"""`soctriage ledger verify|export` (and the checkpoint commands of service/cli_checkpoint.py): every chain
checked against its stored head and the signed checkpoints given, and a case's transcript as evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from soctriage.service.cli_checkpoint import PubkeyOption, verify_against_checkpoints
from soctriage.service.cli_checkpoint import register as register_checkpoint
from soctriage.service.cli_common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    JsonOption,
    echo_json,
    fail,
    open_store,
    write_out,
)
from soctriage.service.cli_report import export_case_pdf
from soctriage.service.config import Settings
from soctriage.service.store import CaseNotFoundError, CaseVerification
from soctriage.service.store.transcript import export_transcript

ledger_app = typer.Typer(help="Verify and export case ledgers.", no_args_is_help=True)
register_checkpoint(ledger_app)  # first: `ledger --help` lists them before verify and export


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")


@ledger_app.command("verify")
def ledger_verify(
    case_ids: Annotated[list[str] | None, typer.Argument(help="case ids to verify")] = None,
    all_cases: Annotated[bool, typer.Option("--all", help="verify every case")] = False,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="a signed checkpoint (ledger checkpoint --out); the cases it covers must still extend the "
            "heads it committed, and later checkpoints must extend it. Repeatable",
        ),
    ] = None,
    pubkey: PubkeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Exit 0 when every chain is intact (and extends the given checkpoints); 1 naming each case that fails.
    Verifying nothing (no store, no case) fails too."""
    if not case_ids and not all_cases:
        raise fail("ledger verify: name one or more CASE ids, or pass --all")
    if case_ids and all_cases:
        raise fail("ledger verify: give CASE ids or --all, not both")
    if pubkey is not None and not checkpoints:
        raise fail("ledger verify: --pubkey checks checkpoint signatures; give --checkpoint FILE with it")
    settings = Settings()
    with open_store(settings, create=False, missing_exit=EXIT_CHECK_FAILED) as store:
        try:
            report = store.verify(None if all_cases else case_ids)
        except CaseNotFoundError as exc:
            raise fail(str(exc), EXIT_CHECK_FAILED) from exc
        against = (
            verify_against_checkpoints(
                settings, store, checkpoints, pubkey, None if all_cases else case_ids, as_json=as_json
            )
            if checkpoints
            else None
        )
    if not report.cases:
        raise fail("ledger verify --all: the store has no case, so nothing was verified", EXIT_CHECK_FAILED)
    if as_json:
        body: dict[str, object] = {
            "ok": report.ok and (against is None or against["ok"]),
            "cases": [_check_json(check) for check in report.cases],
            "entries_checked": report.entries_checked,
        }
        if against is not None:
            body["checkpoints"] = against
        echo_json(body)
    else:
        for check in report.cases:
            if check.ok:
                typer.echo(f"{check.case_id}: ok ({check.entries} entries, head {check.head_hash})")
            elif check.bad_seq is None:
                typer.echo(f"{check.case_id}: FAILED: {check.problem}", err=True)
            else:
                typer.echo(f"{check.case_id}: FAILED at seq {check.bad_seq}: {check.problem}", err=True)
        typer.echo(
            f"{len(report.cases)} case(s) verified, {len(report.failures)} failed,"
            f" {report.entries_checked} entries"
        )
    extends = against is None or bool(against["ok"])
    raise typer.Exit(EXIT_OK if report.ok and extends else EXIT_CHECK_FAILED)


def _check_json(check: CaseVerification) -> dict[str, object]:
    return {
        "case_id": check.case_id,
        "ok": check.ok,
        "entries": check.entries,
        "head_seq": check.head_seq,
        "head_hash": check.head_hash,
        "bad_seq": check.bad_seq,
        "problem": None if check.problem is None else str(check.problem),
    }


@ledger_app.command("export")
def ledger_export(
    case_id: Annotated[str, typer.Argument(help="case id")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl, md, html or pdf")] = "md",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write to this file instead of stdout")
    ] = None,
) -> None:
    """The case transcript as evidence: JSONL (re-verifiable), Markdown, self-contained HTML, or a PDF report."""
    if fmt == "pdf":
        return export_case_pdf(case_id, out)
    if fmt not in ("jsonl", "md", "html"):
        raise fail(f"--format: unknown transcript format {fmt!r}; choose jsonl, md, html or pdf")
    with open_store(Settings(), create=False) as store:
        try:
            text = export_transcript(store, case_id, fmt)  # type: ignore[arg-type]
        except CaseNotFoundError as exc:
            raise fail(str(exc)) from exc
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_out(out, text.encode())
        typer.echo(f"wrote {out}", err=True)
