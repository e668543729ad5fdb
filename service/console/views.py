"""What the console's pages show, gathered without HTTP: the queue of a tenant and everything about one case.

Routes (service/console/routes.py) authorize, call these and render templates; nothing here decides anything
or writes to the store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, get_args

from markupsafe import Markup, escape
from soctriage.agents.assistant_facts import describe
from soctriage.agents.lifecycle import ActionTrail, action_trails
from soctriage.agents.run import ActionView, Triager
from soctriage.service.domain import DISPOSITIONS, Alert, Case, CaseStatus, LedgerEntry, SeverityId
from soctriage.service.ledger_events import is_event
from soctriage.service.ledger_notes import PossiblePromptInjection
from soctriage.service.store import CaseVerification, Store
from soctriage.service.store.case_query import (
    CaseFilter,
    CasePage,
    count_cases,
    page_cases,
    queue_stamp,
    status_counts,
)

STATUSES: tuple[str, ...] = get_args(CaseStatus)
SEVERITIES: tuple[str, ...] = tuple(s.name.capitalize() for s in SeverityId if s is not SeverityId.OTHER)
PAGE_SIZE = 50
_CITATION = re.compile(r"\[seq\s*([\d,\s]+)\]", re.I)


@dataclass(frozen=True)
class QueueView:
    page: CasePage
    wanted: CaseFilter
    counts: dict[str, int]
    total: int  # every case of the tenant
    matching: int  # those the filter keeps
    stamp: str
    cursor: str | None


def queue_view(store: Store, tenant: str, wanted: CaseFilter, cursor: str | None) -> QueueView:
    counts = status_counts(store, tenant)
    total = sum(counts.values())
    filtered = wanted != CaseFilter()
    return QueueView(
        page=page_cases(store, tenant, wanted, limit=PAGE_SIZE, cursor=cursor),
        wanted=wanted,
        counts=counts,
        total=total,
        matching=count_cases(store, tenant, wanted) if filtered else total,
        stamp=queue_stamp(store, tenant, counts),
        cursor=cursor,
    )


@dataclass(frozen=True)
class ActionRow:
    """An action as the case page shows it: the graph's (or assistant's) view of it plus its ledger trail."""

    view: ActionView
    trail: ActionTrail | None

    @property
    def pending(self) -> bool:
        return self.view.status == "awaiting_approval"

    @property
    def decided_by(self) -> str | None:
        if self.trail is None or self.trail.decided_by is None:
            return None
        return self.trail.decided_by.removeprefix("human:")


@dataclass(frozen=True)
class ChatTurn:
    question: LedgerEntry
    answer: LedgerEntry | None


@dataclass(frozen=True)
class CaseView:
    case: Case
    alert: Alert | None
    entries: list[LedgerEntry]
    actions: list[ActionRow]
    integrity: CaseVerification
    chat: list[ChatTurn]
    feedback: LedgerEntry | None
    normalized: str = field(repr=False)

    @property
    def evidence(self) -> list[LedgerEntry]:
        if self.case.verdict is None:
            return []
        by_seq = {e.seq: e for e in self.entries}
        return [by_seq[s] for s in self.case.verdict.evidence if s in by_seq]

    @property
    def injection(self) -> LedgerEntry | None:
        return next((e for e in self.entries if is_event(e, PossiblePromptInjection)), None)


async def case_view(triager: Triager, case: Case) -> CaseView:
    store = triager.store
    entries = store.entries(case.id)
    result = await triager.result(case.id)
    trails = {t.action.id: t for t in action_trails(entries)}
    alert = store.get_alert(case.alert_ids[0], case.tenant) if case.alert_ids else None
    [integrity] = store.verify([case.id]).cases
    answers = {
        e.payload.get("in_reply_to"): e
        for e in entries
        if e.kind == "chat_message" and e.actor == "assistant"
    }
    chat = [
        ChatTurn(e, answers.get(e.seq))
        for e in entries
        if e.kind == "chat_message" and e.actor != "assistant"
    ]
    normalized = alert.model_dump(mode="json", exclude={"raw"}) if alert else {}
    return CaseView(
        case=case,
        alert=alert,
        entries=entries,
        actions=[ActionRow(view, trails.get(view.id)) for view in result.actions],
        integrity=integrity,
        chat=chat,
        feedback=next((e for e in reversed(entries) if e.kind == "feedback"), None),
        normalized=json.dumps(normalized, indent=2, ensure_ascii=False),
    )


def decision_outcome(view: CaseView, action_id: str) -> str:
    """What became of a decided action, for the message after approve/reject: who decided, what the resumed
    case did with it, and where the case is now."""
    row = next((a for a in view.actions if a.view.id == action_id), None)
    if row is None:
        return f"{action_id}: no such action"
    action = row.view
    who = f" by {row.decided_by}" if row.decided_by else ""
    decided = row.trail.action.status if row.trail else action.status
    verb = {"executed": "approved", "simulated": "approved", "failed": "approved"}.get(decided, decided)
    return (
        f"{action.id} {action.tool} {action.target}: {verb}{who}; the action is now"
        f" {action.status.replace('_', ' ')} and the case is {view.case.status.replace('_', ' ')}."
    )


def entry_summary(entry: LedgerEntry) -> str:
    """The one-line reading the assistant also uses (`seq N kind actor: ` cut off: the page shows those)."""
    return describe(entry).split(": ", 1)[-1]


def payload_json(entry: LedgerEntry) -> str:
    return json.dumps(entry.payload, indent=2, ensure_ascii=False, sort_keys=True)


def cited(text: str, head: int | None = None) -> Markup:
    """Answer text as HTML: escaped, with every `[seq N]` a link to timeline entry N (seqs past `head`, which
    no entry has, stay plain text)."""

    def link(match: re.Match[str]) -> str:
        seqs = [int(n) for n in re.findall(r"\d+", match.group(1))]
        parts = [
            f'<a class="cite" href="#seq-{n}" data-seq="{n}">{n}</a>'
            if head is None or 1 <= n <= head
            else str(n)
            for n in seqs
        ]
        return f"[seq {', '.join(parts)}]"

    return Markup(_CITATION.sub(link, str(escape(text))))


def when(ts: datetime | None) -> str:
    return "" if ts is None else ts.strftime("%Y-%m-%d %H:%M:%S UTC")


def filter_from(params: dict[str, Any]) -> tuple[CaseFilter, list[str]]:
    """The queue filter from query parameters, and what is wrong with any of them."""
    problems = []
    chosen: dict[str, Any] = {}
    for name, allowed in (("status", STATUSES), ("disposition", DISPOSITIONS), ("severity", SEVERITIES)):
        value = params.get(name) or None
        if value is not None and value not in allowed:
            problems.append(f"{name} {value!r} is not one of {', '.join(allowed)}")
            value = None
        chosen[name] = value
    return CaseFilter(text=(params.get("q") or "").strip() or None, **chosen), problems
