"""`soctriage report evidence`: the insurer / audit evidence report, recomputed from the ledger (DESIGN §7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from soctriage.service.cli_common import (
    EXIT_CHECK_FAILED,
    Progress,
    fail,
    open_store,
    write_out,
)
from soctriage.service.config import Settings
from soctriage.service.domain import utc_now
from soctriage.service.provenance import in_force
from soctriage.service.reports import (
    REPORT_FORMATS,
    EvidenceParams,
    EvidenceReport,
    evidence_from_store,
    parse_day,
    render_report,
)
from soctriage.service.store.signing import local_public_key

report_app = typer.Typer(help="Evidence reports for insurers and auditors.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")


def _day(option: str, text: str | None, *, end: bool = False) -> object:
    if text is None:
        return None
    try:
        return parse_day(text, end=end)
    except ValueError as exc:
        raise fail(f"{option}: {exc}") from exc


def _previous(path: Path) -> EvidenceReport:
    try:
        return EvidenceReport.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise fail(f"--verify-from {path}: cannot read: {exc.strerror}") from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "<report>"
        raise fail(
            f"--verify-from {path}: not a JSON evidence report (field {where}: {error['msg']})"
        ) from exc


@report_app.command("evidence")
def evidence(
    since: Annotated[str | None, typer.Option(help="first day (YYYY-MM-DD, UTC) or ISO timestamp")] = None,
    until: Annotated[str | None, typer.Option(help="last day included (YYYY-MM-DD) or ISO timestamp")] = None,
    tenant: Annotated[
        str | None, typer.Option(help="only this tenant's cases (default: every tenant)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help=", ".join(REPORT_FORMATS))] = "md",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write here instead of stdout")] = None,
    verify_from: Annotated[
        Path | None,
        typer.Option(
            "--verify-from",
            help="skip re-verifying: reuse the integrity results of this earlier JSON report for chains "
            "that have not changed since (the rest are reported as not verified)",
        ),
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="report without checking the chains")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the JSON report (same as --format json)")] = False,
) -> None:
    """Alert volume, documented outcomes, MTTD/MTTR/MTTC, actions and approvals, model usage and ledger
    integrity for a period, every number recomputed from the case ledgers."""
    if as_json:
        if fmt not in ("md", "json"):
            raise fail(f"--json and --format {fmt}: give one of them")
        fmt = "json"
    if fmt not in REPORT_FORMATS:
        raise fail(f"--format: unknown report format {fmt!r}; choose one of {', '.join(REPORT_FORMATS)}")
    if fmt == "pdf" and out is None:
        raise fail("--format pdf: give --out FILE (a PDF is not written to a terminal)")
    if verify_from is not None and no_verify:
        raise fail("give --verify-from or --no-verify, not both")
    settings = Settings()
    params = EvidenceParams(
        generated_at=utc_now(),
        since=_day("--since", since),  # type: ignore[arg-type]
        until=_day("--until", until, end=True),  # type: ignore[arg-type]
        tenant=tenant,
        notification_window_h=settings.notification_window_h,
    )
    if params.since and params.until and params.since >= params.until:
        raise fail(f"--since {since} is not before --until {until}")
    previous = None if verify_from is None else _previous(verify_from)
    mode = "previous" if previous is not None else ("none" if no_verify else "full")
    with open_store(settings, create=False) as store, Progress("report: cases read", None) as progress:
        report = evidence_from_store(
            store,
            params,
            verify=mode,  # type: ignore[arg-type]
            previous=previous,
            public_key=local_public_key(settings),
            progress=progress.update,
        )
    report = report.model_copy(update={"provenance": in_force(settings)})
    data = render_report(report, fmt)  # type: ignore[arg-type]
    if out is None:
        typer.echo(data.decode(), nl=False)
    else:
        write_out(out, data)
        typer.echo(f"wrote {out}", err=True)
    if report.integrity.failed:
        typer.echo(f"{report.integrity.failed} case ledger(s) failed verification", err=True)
    if report.checkpoint is not None and report.checkpoint.problems:
        typer.echo(f"the cases no longer extend checkpoint #{report.checkpoint.number}:", err=True)
        for problem in report.checkpoint.problems:
            typer.echo(f"  {problem}", err=True)
    if report.integrity.failed or (report.checkpoint is not None and report.checkpoint.problems):
        raise typer.Exit(EXIT_CHECK_FAILED)


def export_case_pdf(case_id: str, out: Path | None) -> None:
    """`ledger export CASE --format pdf`: the one-case report (timeline, verdict, actions, verification)."""
    from soctriage.service.reports.case_pdf import case_pdf
    from soctriage.service.store import CaseNotFoundError

    if out is None:
        raise fail("--format pdf: give --out FILE (a PDF is not written to a terminal)")
    with open_store(Settings(), create=False) as store:
        try:
            data = case_pdf(store, case_id)
        except CaseNotFoundError as exc:
            raise fail(str(exc)) from exc
    write_out(out, data)
    typer.echo(f"wrote {out}", err=True)
