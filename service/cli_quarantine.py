"""`soctriage quarantine list|show|retry`: the door of the dead-letter queue. Every record intake rejected is
kept whole; these commands list them (every tenant's, or one), show one exactly as received, and submit one
again, as POST /v1/alerts would, once a normalizer or the `--format` is right."""

from __future__ import annotations

import base64
import sys
from typing import Annotated

import typer
from soctriage.service.cli_common import EXIT_BAD_INPUT, JsonOption, echo_json, open_store, render_table
from soctriage.service.config import Settings
from soctriage.service.domain import ALERT_FORMATS
from soctriage.service.ingest.limits import printable
from soctriage.service.store import QuarantinedRecord, Store

quarantine_app = typer.Typer(help="List, show and re-submit rejected records.", no_args_is_help=True)
IdArgument = Annotated[
    int, typer.Argument(min=1, help="quarantine id (from a rejection or `quarantine list`)")
]


def register(app: typer.Typer) -> None:
    app.add_typer(quarantine_app, name="quarantine")


def _summary(record: QuarantinedRecord) -> dict[str, object]:
    rejection = record.rejection
    return {
        "id": record.id,
        "received_at": record.received_at.isoformat(),
        "tenant": record.tenant,
        "source": rejection.source,
        "line": rejection.line,
        "format": rejection.format,
        "reason": rejection.reason,
        "field": rejection.field,
        "size": len(rejection.raw),
    }


def _record(store: Store, quarantine_id: int) -> QuarantinedRecord:
    record = store.get_quarantined(quarantine_id)
    if record is None:
        typer.echo(f"quarantined record {quarantine_id} does not exist", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    return record


@quarantine_app.command("list")
def quarantine_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's records")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Rejected records, newest first, without their bytes."""
    with open_store(Settings(), create=False) as store:
        records = store.list_quarantine(limit, tenant)
    if as_json:
        return echo_json([_summary(record) for record in records])
    rows = [
        (
            str(record.id),
            f"{record.received_at:%Y-%m-%d %H:%M:%S}",
            record.tenant or "-",
            f"{record.rejection.source}:{record.rejection.line}",
            record.rejection.reason
            + (f" (field {record.rejection.field})" if record.rejection.field else ""),
        )
        for record in records
    ]
    typer.echo(render_table(("id", "received (UTC)", "tenant", "from", "reason"), rows))
    typer.echo(f"{len(records)} record(s)", err=True)


@quarantine_app.command("show")
def quarantine_show(
    quarantine_id: IdArgument,
    raw: Annotated[bool, typer.Option("--raw", help="only the record's bytes, exactly as received")] = False,
    as_json: JsonOption = False,
) -> None:
    """One rejected record: why, and the record itself (attacker written: read it as text, never run it)."""
    with open_store(Settings(), create=False) as store:
        record = _record(store, quarantine_id)
    data = record.rejection.raw
    if raw:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return None
    if as_json:
        return echo_json(
            {
                **_summary(record),
                "raw_base64": base64.b64encode(data).decode(),
                "raw_text": data.decode("utf-8", "replace"),
            }
        )
    lines = [f"{name:<12}{value if value is not None else '-'}" for name, value in _summary(record).items()]
    # Escaped line by line: a terminal must not run an attacker's escape sequences.
    text = "\n".join(printable(line) for line in data.decode("utf-8", "replace").split("\n"))
    typer.echo("\n".join(lines) + "\n\n" + text)


@quarantine_app.command("retry")
def quarantine_retry(
    quarantine_id: IdArgument,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help=f"input format: auto, {', '.join(ALERT_FORMATS)}")
    ] = "auto",
) -> None:
    """Submit a rejected record again. Accepted, its cases open, queued for triage by `serve` or `worker`, and
    it leaves the quarantine; still rejected, it stays and exit 2 says why."""
    from soctriage.service.intake import retry_quarantined
    from soctriage.service.queue import open_queue

    if fmt not in ("auto", *ALERT_FORMATS):
        typer.echo(
            f"--format: unknown format {fmt!r}; choose auto or one of {', '.join(ALERT_FORMATS)}", err=True
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    settings = Settings()
    with open_store(settings, create=False) as store:
        record = _record(store, quarantine_id)
        # A record kept before the quarantine named tenants belongs to the command line's tenant.
        tenant = record.tenant or settings.tenant
        report = retry_quarantined(
            store,
            open_queue(settings, store),
            record,
            fmt,
            tenant,
            settings.max_record_bytes,  # type: ignore[arg-type]
        )
    for accepted in report.accepted:
        state = "already received: its case" if accepted.duplicate else "queued for triage in"
        typer.echo(f"{accepted.alert_id}: {state} {accepted.case_id} (tenant {tenant})")
    for rejected in report.rejected:
        typer.echo(rejected.message, err=True)
    if report.rejected:
        typer.echo(f"quarantined record {quarantine_id} is still rejected and stays in quarantine", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
