"""An analyst's final word on a case, and the suppression rules it teaches.

Feedback is a `feedback` ledger entry; the case is re-indexed at once so similar-case retrieval shows the
analyst's disposition from then on (supporting evidence, never a rule). Benign feedback also teaches the
alert's structured key to the tenant's rule book (tools/suppression.py); a rule made active, or revoked,
is written to the ledger of the case that caused it, and a revocation to every case the rule was taught on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from soctriage.agents.deps import Deps
from soctriage.service.config import Settings
from soctriage.service.domain import LedgerEntry
from soctriage.service.ledger_events import Feedback
from soctriage.service.ledger_notes import SuppressionRuleChanged
from soctriage.service.store import Store
from soctriage.tools.retrieval_docs import case_document
from soctriage.tools.suppression import Learned, RuleBook, RuleError, SuppressionRule


class FeedbackError(LookupError):
    """The case does not exist (or is not the caller's), or the rule asked for cannot be made or changed."""


class UnknownRule(FeedbackError):
    """No such rule (for this tenant)."""


@dataclass(frozen=True)
class FeedbackOutcome:
    entry: LedgerEntry
    learned: Learned


def give_feedback(
    deps: Deps,
    case_id: str,
    *,
    by: str,
    disposition: str,
    reason_code: str | None,
    note: str | None,
    rule: bool = False,
    rule_on_host: bool = False,
) -> FeedbackOutcome:
    """Record an analyst's final disposition and fold it into the rule book. `rule` asks for a suppression
    rule from this case now (an error when the alert names no program or file to key it on); without it, a
    rule is made once feedback on `rule_after_feedbacks` cases of one key agrees."""
    case = deps.store.get_case(case_id)
    if case is None or not case.alert_ids:
        raise FeedbackError(f"case {case_id} does not exist")
    alert = deps.store.get_alert(case.alert_ids[0], case.tenant)
    if alert is None:
        raise FeedbackError(f"case {case_id}: its alert is not stored")
    settings = deps.settings
    if rule and disposition not in ("false_positive", "benign_true_positive"):
        raise FeedbackError(f"rule: only a benign disposition makes a suppression rule, not {disposition}")
    try:
        learned = deps.rules.learn(
            case.tenant,
            case_id,
            alert,
            disposition,
            author=by,
            reason=note or reason_code,
            explicit=rule,
            bind_host=rule_on_host,
            after=settings.rule_after_feedbacks,
            ttl=_ttl(settings),
        )
    except RuleError as exc:
        raise FeedbackError(str(exc)) from exc
    payload: dict[str, Any] = {"disposition": disposition, "reason_code": reason_code, "note": note}
    if learned.rule is not None:
        payload["rule"] = {"id": learned.rule.id, "change": learned.change, "status": learned.rule.status}
    entry = deps.record(case_id, f"human:{by}", "feedback", Feedback.model_validate(payload))
    if learned.change in ("activated", "revoked") and learned.rule is not None:
        deps.record(case_id, f"human:{by}", "note", rule_note(learned.rule, learned.change, learned.why))
    deps.connectors.retrieval.get().index_cases([case_document(case, alert, payload)])
    return FeedbackOutcome(entry, learned)


def revoke_rule(store: Store, rule_id: str, *, by: str, reason: str, tenant: str | None) -> SuppressionRule:
    """Revoke a rule (only the caller's tenant's, when `tenant` is given) and say so in the ledger of every
    case it was taught on."""
    book = RuleBook(store.engine)
    found = book.get(rule_id)
    if found is None or (tenant is not None and found.tenant != tenant):
        raise UnknownRule(f"rule {rule_id} does not exist")
    try:
        revoked = book.revoke(rule_id, by, reason)
    except RuleError as exc:
        raise FeedbackError(str(exc)) from exc
    for case_id in revoked.source_cases:
        if store.get_case(case_id) is not None:
            store.append(case_id, f"human:{by}", "note", rule_note(revoked, "revoked", reason))
    return revoked


def rule_note(rule: SuppressionRule, change: str | None, why: str) -> SuppressionRuleChanged:
    """The ledger note for a rule made active or revoked: the rule as it then stood."""
    return SuppressionRuleChanged(
        change=change,
        why=why,
        rule_id=rule.id,
        match=rule.match.model_dump(mode="json", exclude_none=True),
        disposition=rule.disposition,
        author=rule.author,
        source_cases=list(rule.source_cases),
        expires_at=rule.expires_at.isoformat() if rule.expires_at else None,
    )


def _ttl(settings: Settings) -> timedelta | None:
    return timedelta(days=settings.rule_ttl_days) if settings.rule_ttl_days else None
