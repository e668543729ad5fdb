"""`soctriage cases list|show|prune-checkpoints`: cases of every tenant (or one), one case with its verdict,
timeline and actions, and the one-off prune of checkpoints kept by cases that finished before runs pruned their
own."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer
from soctriage.service import event_loop
from soctriage.service.cli_common import JsonOption, echo_json, fail, open_store, render_table
from soctriage.service.config import Settings
from soctriage.service.domain import Case
from soctriage.service.store.transcript import export_transcript

if TYPE_CHECKING:
    from soctriage.agents.run import ActionView


cases_app = typer.Typer(help="Inspect cases; prune finished cases' checkpoints.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cases_app, name="cases")


@cases_app.command("list")
def cases_list(
    status: Annotated[str | None, typer.Option("--status", help="only cases in this status")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's cases")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List cases of every tenant (or one), newest first."""
    with open_store(Settings(), create=False) as store:
        try:
            cases = store.list_cases(status=status, tenant=tenant, limit=limit)
        except ValueError as exc:
            raise fail(f"--status: {exc}") from exc
    if as_json:
        return echo_json([case.model_dump(mode="json") for case in cases])
    rows = [
        (
            case.id,
            case.tenant,
            f"{case.created_at:%Y-%m-%d %H:%M:%S}",
            case.status,
            case.verdict.disposition if case.verdict else "-",
            case.verdict.summary if case.verdict else "",
        )
        for case in cases
    ]
    header = ("case", "tenant", "created (UTC)", "status", "disposition", "summary")
    typer.echo(render_table(header, rows))
    typer.echo(f"{len(cases)} case(s)", err=True)


@cases_app.command("show")
def cases_show(
    case_id: Annotated[str, typer.Argument(help="case id")],
    ledger: Annotated[bool, typer.Option("--ledger", help="also print the ledger transcript")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a case: status, verdict, status times and actions, and optionally its transcript."""
    settings = Settings()
    with open_store(settings, create=False) as store:
        case = store.get_case(case_id)
        if case is None:
            raise fail(f"case {case_id} does not exist")
        transcript = export_transcript(store, case_id, "md") if ledger and not as_json else None
        entries = store.entries(case_id) if ledger and as_json else None
    actions = event_loop.run(_case_actions(settings, case_id))
    if as_json:
        view: dict[str, object] = {
            "case": case.model_dump(mode="json"),
            "actions": [a.model_dump(mode="json") for a in actions],
        }
        if entries is not None:
            view["ledger"] = [e.model_dump(mode="json") for e in entries]
        return echo_json(view)
    typer.echo(_case_text(case, actions))
    if transcript is not None:
        typer.echo("\n" + transcript)


async def _case_actions(settings: Settings, case_id: str) -> list[ActionView]:
    # Reading needs no model: the builtin stands in, so a read works without an endpoint or its key.
    from soctriage.agents.run import Triager  # the graph stack is slow to import; only `show` needs it

    async with Triager(settings.model_copy(update={"model": "builtin"})) as triager:
        return list((await triager.result(case_id)).actions)


@cases_app.command("prune-checkpoints")
def cases_prune_checkpoints(as_json: JsonOption = False) -> None:
    """Keep only the last checkpoint of every finished case (cases that finished before each run pruned its
    own); a case paused for a human, or whose run has not finished, keeps all of its checkpoints."""
    from soctriage.agents.checkpoint import prune_finished_cases  # the graph stack is slow to import

    report = event_loop.run(prune_finished_cases(Settings()))
    if as_json:
        return echo_json(dataclasses.asdict(report))
    typer.echo(
        f"pruned {report.cases} finished case(s): {report.checkpoints} checkpoint(s), "
        f"{report.bytes:,} bytes freed; {report.unfinished} unfinished case(s) (paused for a human, or "
        "mid-run) kept every checkpoint"
    )


def _case_text(case: Case, actions: list[ActionView]) -> str:
    verdict = case.verdict
    lines = [
        f"case        {case.id}",
        f"tenant      {case.tenant}",
        f"status      {case.status}" + (f" (assignee {case.assignee})" if case.assignee else ""),
        f"alerts      {', '.join(case.alert_ids) or '-'}",
        f"created     {case.created_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if verdict is None:
        lines.append("verdict     none yet")
    else:
        lines += [
            f"verdict     {verdict.disposition}, severity {verdict.severity.label}, confidence {verdict.confidence:.2f}",
            f"summary     {verdict.summary}",
            f"rationale   {verdict.rationale}",
            f"techniques  {', '.join(verdict.techniques) or '-'}",
            f"evidence    ledger seq {', '.join(map(str, verdict.evidence)) or '-'}",
        ]
    lines.append("timeline")
    lines += [f"  {when:%Y-%m-%d %H:%M:%S} UTC  {status}" for status, when in case.status_times.items()]
    if actions:
        rows = [(a.id, a.tool, a.target, a.decision, a.status, a.reason) for a in actions]
        table = render_table(("id", "tool", "target", "decision", "status", "reason"), rows)
        lines += ["actions", *(f"  {line}" for line in table.splitlines())]
    else:
        lines.append("actions     none")
    return "\n".join(lines)
