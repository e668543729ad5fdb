"""One action lifecycle: what a run returns, what the case's ledger says afterwards, and what every face decides
on are the same actions in the same states, whoever proposed them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from service_support import alert_variants
from soctriage.agents.lifecycle import Decision, NotDecidable
from soctriage.agents.run import Triager, TriageResult
from soctriage.service.cli import app
from soctriage.service.config import Settings
from soctriage.service.domain import Alert
from soctriage.service.ingest import normalize_bytes
from soctriage.service.ledger_events import events_of
from soctriage.service.ledger_notes import DecisionRefused
from soctriage.service.store import Store
from typer.testing import CliRunner

# One containment action an hour, so the second case's allowed containment waits for a human instead.
TIGHT_BUDGET = """
version: 1
rate_limits:
  - {id: hourly, max_actions: 1, window_s: 3600, exempt_tools: [create_ticket]}
rules:
  - id: tickets
    when: {tools: [create_ticket]}
    decision: allow
    reason: tickets change nothing
"""


def alerts(count: int, names: list[str]) -> list[Alert]:
    found = [item for body in alert_variants(count, names) for item in normalize_bytes(body, "variant.json")]
    assert all(isinstance(a, Alert) for a in found)
    return found  # type: ignore[return-value]


def settings_for(tmp_path: Path) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(TIGHT_BUDGET)
    return Settings(home=tmp_path / "home", policy_path=policy, dry_run=False)


async def test_a_run_and_its_ledger_agree_on_every_action_even_one_held_by_the_budget(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    names = ["defender-encoded-powershell.json", "sentinelone-vssadmin-shadow-delete.json"]
    async with Triager(settings, group=False) as triager:
        results = [await triager.triage(alert) for alert in alerts(4, names)]
        for result in results:
            assert (await triager.result(result.case_id)).actions == result.actions
        statuses = {a.status for r in results for a in r.actions if a.tool != "create_ticket"}
        assert "executed" in statuses
        held = [
            (r.case_id, a)
            for r in results
            for a in r.actions
            if a.decision == "needs_approval" and a.status == "awaiting_approval"
        ]
        assert held, statuses
        case_id, action = held[0]
        assert "budget" in action.reason
        done = await triager.decide(case_id, Decision(action_id=action.id, approve=True, by="erin"))
    decided = next(a for a in done.actions if a.id == action.id)
    assert decided.status == "executed"


def test_a_decision_on_an_action_no_longer_pending_is_refused_and_written_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path / "home")

    async def reject_then_approve() -> tuple[TriageResult, str]:
        async with Triager(settings, group=False) as triager:
            [alert] = alerts(1, ["crowdstrike-lsass-dump.json"])
            result = await triager.triage(alert)
            waiting = [a.id for a in result.actions if a.status == "awaiting_approval"]
            assert waiting
            await triager.decide(result.case_id, Decision(action_id=waiting[0], approve=False, by="erin"))
            with pytest.raises(NotDecidable, match="no pending action"):
                await triager.decide(result.case_id, Decision(action_id=waiting[0], approve=True, by="erin"))
            return result, waiting[0]

    result, action_id = asyncio.run(reject_then_approve())
    monkeypatch.setenv("SOCTRIAGE_HOME", str(settings.home))
    runner = CliRunner()
    again = runner.invoke(app, ["approve", result.case_id, action_id, "--by", "frank"])
    unknown = runner.invoke(app, ["approve", result.case_id, "A99", "--by", "frank"])
    assert again.exit_code == 2 and "no pending action" in again.output
    assert unknown.exit_code == 2 and "has no action A99" in unknown.output
    with Store.open(settings) as store:
        entries = store.entries(result.case_id)
    refused = [(e.actor, e.event()) for e in entries if isinstance(e.event(), DecisionRefused)]
    # The CLI's refusal is in the transcript like the API's; a made-up action id leaves the case untouched.
    assert [(actor, r.action_id) for actor, r in refused] == [("human:frank", action_id)]
    assert "rejected" in refused[0][1].reason
    assert len(events_of(entries, DecisionRefused)) == 1
