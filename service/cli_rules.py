"""`soctriage feedback` (an analyst's final disposition, which may teach a suppression rule) and
`soctriage rules list|show|revoke`."""

from __future__ import annotations

from typing import Annotated

import typer
from soctriage.service import event_loop
from soctriage.service.cli_common import JsonOption, echo_json, fail, open_store, render_table, require_store
from soctriage.service.config import Settings
from soctriage.service.domain import DISPOSITIONS

rules_app = typer.Typer(help="Suppression rules analysts taught through feedback.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(feedback)
    app.add_typer(rules_app, name="rules")


def feedback(
    case_id: Annotated[str, typer.Argument(help="case id")],
    disposition: Annotated[str, typer.Option("--disposition", help=f"one of {', '.join(DISPOSITIONS)}")],
    by: Annotated[str, typer.Option("--by", help="who decides (recorded in the ledger)")],
    reason_code: Annotated[str | None, typer.Option("--reason-code", help="e.g. known_admin_tool")] = None,
    note: Annotated[str | None, typer.Option("--note", help="why, in words")] = None,
    rule: Annotated[
        bool, typer.Option("--rule", help="make a suppression rule from this case now (benign only)")
    ] = False,
    on_host: Annotated[bool, typer.Option("--on-host", help="bind that rule to this case's host")] = False,
    as_json: JsonOption = False,
) -> None:
    """Record an analyst's final disposition of a case. Benign feedback teaches the alert's pattern: a rule is
    made at once with --rule, or when feedback on SOCTRIAGE_RULE_AFTER_FEEDBACKS cases of one pattern agrees."""
    if disposition not in DISPOSITIONS:
        raise fail(f"--disposition: {disposition!r} is not one of {', '.join(DISPOSITIONS)}")
    if not by.strip():
        raise fail("--by: give the name of the person deciding")
    settings = Settings()
    require_store(settings)
    outcome = event_loop.run(
        _feedback(settings, case_id, by.strip(), disposition, reason_code, note, rule, on_host)
    )
    learned = outcome.learned
    if as_json:
        return echo_json(
            {
                "case_id": case_id,
                "seq": outcome.entry.seq,
                "disposition": disposition,
                "rule": learned.rule.model_dump(mode="json") if learned.rule else None,
                "rule_change": learned.change,
            }
        )
    typer.echo(f"{case_id}: feedback {disposition} recorded at seq {outcome.entry.seq}")
    if learned.rule is not None and learned.change is not None:
        rule_ = learned.rule
        typer.echo(
            f"rule {rule_.id}: {learned.change} ({rule_.status}; cases {', '.join(rule_.source_cases)})"
        )
    elif rule:
        typer.echo(f"no rule: {learned.why}")


async def _feedback(
    settings: Settings,
    case_id: str,
    by: str,
    disposition: str,
    reason_code: str | None,
    note: str | None,
    rule: bool,
    on_host: bool,
) -> object:
    from soctriage.agents.feedback import FeedbackError, give_feedback
    from soctriage.agents.run import Triager

    # Feedback needs no model: the builtin stands in, so it works without an endpoint or its key.
    async with Triager(settings.model_copy(update={"model": "builtin"})) as triager:
        try:
            return give_feedback(
                triager.deps,
                case_id,
                by=by,
                disposition=disposition,
                reason_code=reason_code,
                note=note,
                rule=rule,
                rule_on_host=on_host,
            )
        except FeedbackError as exc:
            raise fail(str(exc)) from exc


@rules_app.command("list")
def rules_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's rules")] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="also list revoked rules")] = False,
    as_json: JsonOption = False,
) -> None:
    """List suppression rules (active and candidates; --revoked adds revoked ones), newest first."""
    from soctriage.tools.suppression import RuleBook

    with open_store(Settings(), create=False) as store:
        found = RuleBook(store.engine).list(tenant, revoked=revoked)
    if as_json:
        return echo_json([r.model_dump(mode="json") for r in found])
    rows = [
        (
            r.id,
            r.tenant,
            r.status,
            r.disposition,
            str(r.hits),
            f"{r.expires_at:%Y-%m-%d}" if r.expires_at else "-",
            r.author,
            r.match.process_path or r.match.file_path or r.match.process_sha256 or "",
            ", ".join(r.source_cases),
        )
        for r in found
    ]
    header = ("rule", "tenant", "status", "disposition", "hits", "expires", "author", "program", "cases")
    typer.echo(render_table(header, rows))
    typer.echo(f"{len(found)} rule(s)", err=True)


@rules_app.command("show")
def rules_show(rule_id: Annotated[str, typer.Argument(help="rule id")], as_json: JsonOption = False) -> None:
    """Show one rule: every field it matches, its author, reason, cases, expiry and hits."""
    from soctriage.tools.suppression import RuleBook

    with open_store(Settings(), create=False) as store:
        found = RuleBook(store.engine).get(rule_id)
    if found is None:
        raise fail(f"rule {rule_id} does not exist")
    view = found.model_dump(mode="json")
    if as_json:
        return echo_json(view)
    match = view.pop("match")
    for name, value in [*view.items(), *((f"match.{k}", v) for k, v in match.items())]:
        if value not in (None, [], ()):
            typer.echo(f"{name}: {', '.join(value) if isinstance(value, list) else value}")


@rules_app.command("revoke")
def rules_revoke(
    rule_id: Annotated[str, typer.Argument(help="rule id")],
    by: Annotated[str, typer.Option("--by", help="who revokes (recorded in the ledger)")],
    reason: Annotated[str, typer.Option("--reason", help="why")],
) -> None:
    """Revoke a rule; the ledger of every case it was taught on records it."""
    from soctriage.agents.feedback import FeedbackError, revoke_rule

    if not by.strip() or not reason.strip():
        raise fail("--by and --reason: say who revokes the rule and why")
    with open_store(Settings(), create=False) as store:
        try:
            revoked = revoke_rule(store, rule_id, by=by.strip(), reason=reason.strip(), tenant=None)
        except FeedbackError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"rule {revoked.id} revoked by {revoked.revoked_by}: {revoked.revoke_reason}")
