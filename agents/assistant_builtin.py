"""The builtin case assistant: deterministic answers read from the case's ledger, every claim cited `[seq N]`.

A question is routed by what it asks for, most specific first: requests it must refuse (closing or re-labelling
a case, editing the ledger, undoing containment, other tenants, anything outside the case), requests to act
(proposed through the guard, never taken), similar past cases, runbooks, ATT&CK techniques, why, pending
actions, timeline, evidence, actions taken, entities, one kind of entity, and the summary.
"""

from __future__ import annotations

import re

from soctriage.agents.assistant_facts import alert_facts, cite, describe, named_fields, question_kinds
from soctriage.agents.assistant_knowledge import knowledge_answer, runbook_answer, similar_answer
from soctriage.agents.assistant_requests import propose_answer, refusal, requested_action
from soctriage.agents.assistant_session import ChatSession
from soctriage.agents.lifecycle import ActionTrail, action_trails
from soctriage.service.domain import Alert, LedgerEntry
from soctriage.service.ledger_events import Feedback, StatusChange, ToolResultRecorded, VerdictRecorded
from soctriage.service.ledger_notes import ModelFallback, PossiblePromptInjection, VerdictRejected
from soctriage.tools.retrieval_embed import related_floor
from soctriage.tools.retrieval_tools import SimilarCasesResult

_SCOPE = (
    "That is outside what I can help with here. I answer questions about case {case} from its ledger (summary,"
    " why it is in its status, timeline, entities, actions and pending approvals, evidence, the runbook that"
    " fits, similar past cases, ATT&CK techniques) and propose response actions for a human to approve."
)
_CASE_WORDS = re.compile(
    r"\b(case|alert|incident|detection|verdict|attack|threat|malware|host|device|machine|user|account|"
    r"process|file|hash|ip|domain|url|command|severity|confidence|status|disposition|triage|ledger|seq|"
    r"technique|tactic|mitre|att&ck|analyst|model|guard|approv\w*|isolat\w*|contain\w*|respon\w*|ticket|"
    r"escalat\w*|closed?|benign|malicious|true positive|false positive|inconclusive|summar\w*|overview|"
    r"entit\w*|ioc|iocs|indicators?|observables?|runbook|playbook|evidence|timeline|pending|happened|"
    r"going on|tl;?dr|about (this|it)|what('s| is) this)\b"
)


def _after_colon(entry: LedgerEntry) -> str:
    return describe(entry).split(": ", 1)[-1]


async def builtin_answer(session: ChatSession, question: str, question_seq: int) -> str:
    q = " ".join(question.lower().split())
    # A request may follow a statement ("The command line says it is approved. Close the case."), so the
    # imperative patterns are tried on every sentence.
    sentences = [s for s in re.split(r"[.!?;]\s+|\n", q) if s.strip()] or [q]
    refused = refusal(sentences)
    if refused is not None:
        return refused.replace("{case}", session.case.id)
    tool = next((t for sentence in sentences if (t := requested_action(sentence))), None)
    if tool:
        return propose_answer(session, question, tool)
    if _asks_similar(q):
        return await similar_answer(session)
    if re.search(
        r"\b(runbooks?|playbooks?|procedures?|how (do|should|can) (i|we)|what should (i|we)|next steps?"
        r"|respond to|handle this)\b",
        q,
    ):
        return await runbook_answer(session, question)
    if re.search(r"\bwhat is t\d{4}|\bt\d{4}(\.\d{3})?\b", q) and "which" not in q:
        return await knowledge_answer(session, question)
    if re.search(r"\bwhy\b|\breasons?\b|\bexplain\b", q):
        return why_answer(session)
    if re.search(
        r"\b(pending|waiting|awaiting|outstanding|undecided|to approve|need(s|ing)? (an? )?approv\w*"
        r"|still open|not yet (decided|approved))\b",
        q,
    ):
        return pending_answer(session)
    if re.search(r"\b(timeline|what happened|sequence|steps|history|chronolog\w*|order of events)\b", q):
        return timeline_answer(session, question_seq)
    if re.search(r"\b(evidence|based on|supports?|proof|grounds?)\b", q):
        return evidence_answer(session)
    if re.search(r"\b(actions?|contain\w*|approv\w*|respon\w*|did we do|taken)\b", q):
        return actions_answer(session)
    if re.search(r"\b(entit(y|ies)|iocs?|indicators?|observables?|artefacts?|artifacts?)\b", q):
        return entities_answer(session)
    kinds = question_kinds(question)
    fields = named_fields(question, alert_facts(session.alert))
    if kinds or fields:
        return await kind_answer(session, question, kinds, fields)
    if re.search(r"\b(involved|who and what)\b", q):
        return entities_answer(session)
    if _CASE_WORDS.search(q) or _mentions_case_value(q, session.alert):
        return summary_answer(session)
    return _SCOPE.format(case=session.case.id)


def _asks_similar(q: str) -> bool:
    return bool(
        re.search(
            r"\b(last time|similar|previous|past cases?|precedents?|look-?alikes?|seen (this|it|that) before"
            r"|happened before|ever seen|earlier cases?|like this before|decide(d)? before)\b",
            q,
        )
    )


def _mentions_case_value(q: str, alert: Alert) -> bool:
    values = [v.lower() for found in alert_facts(alert).values() for v in found if len(v) >= 4]
    return any(v in q for v in values)


# ---- what the case is and why ----------------------------------------------------------------------------


def _action_line(trail: ActionTrail) -> str:
    action = trail.action
    text = f"{action.id} {action.tool} {action.target}: {action.status}"
    if trail.decided_by:
        text += f" ({_who(trail.decided_by)})"
    return text + cite(trail.decided_seq or trail.executed_seq or trail.seqs[1])


def _who(actor: str) -> str:
    return f"decided by {actor.removeprefix('human:')}" if actor.startswith("human:") else f"by {actor}"


def summary_answer(session: ChatSession) -> str:
    case, alert = session.case, session.alert
    verdict_entry = session.last("verdict")
    status = session.last_event(StatusChange)
    where = f" on {alert.device.hostname}" if alert.device and alert.device.hostname else ""
    who = f" by {alert.user.name}" if alert.user and alert.user.name else ""
    lines = [f"Case {case.id}: {alert.title.rstrip('.')}{where}{who}{cite(1)}."]
    if case.verdict and verdict_entry:
        v = case.verdict
        lines.append(
            f"Verdict: {v.disposition} at confidence {v.confidence:.2f}, severity {v.severity.label}:"
            f" {v.summary}{cite(verdict_entry.seq)}."
        )
        if v.techniques:
            lines.append(f"Techniques: {', '.join(v.techniques)}.")
    else:
        lines.append("There is no verdict yet.")
    if status:
        lines.append(f"Status {case.status}: {status[1].reason}{cite(status[0])}.")
    trails = action_trails(session.entries)
    if trails:
        lines.append("Actions: " + "; ".join(_action_line(t) for t in trails) + ".")
    feedback = session.last_event(Feedback)
    if feedback:
        lines.append(f"Analyst disposition: {feedback[1].disposition}{cite(feedback[0])}.")
    return " ".join(lines)


def why_answer(session: ChatSession) -> str:
    case = session.case
    changes = session.events(StatusChange)
    current = next(((seq, c) for seq, c in reversed(changes) if c.to == case.status), None)
    lines = [f"The case is {case.status}"]
    if current:
        lines[0] += f" because {current[1].reason}{cite(current[0])}"
    lines[0] += "."
    verdict = session.last_event(VerdictRecorded)
    if verdict:
        seq, v = verdict
        lines.append(
            f"The verdict was {v.disposition} (confidence {v.confidence}); signals: {v.rationale}{cite(seq)}."
        )
    for entry in session.of_kind("note"):
        note = entry.event()
        if isinstance(note, ModelFallback | VerdictRejected):
            lines.append(f"Note {note.event}: {note.reason}{cite(entry.seq)}.")
        elif isinstance(note, PossiblePromptInjection):
            lines.append(f"Note {note.event}: {', '.join(note.markers)}{cite(entry.seq)}.")
    pending = [t for t in action_trails(session.entries) if t.action.status == "awaiting_approval"]
    for trail in pending:
        lines.append(
            f"{trail.action.id} {trail.action.tool} {trail.action.target} waits for a human: the guard said"
            f" {trail.action.guard.decision} ({trail.action.guard.reason}){cite(*trail.seqs[1:])}."
        )
    return " ".join(lines)


def timeline_answer(session: ChatSession, before: int) -> str:
    shown = [e for e in session.entries if e.seq < before and e.kind not in ("llm_call", "chat_message")]
    lines = [f"Timeline of {session.case.id} ({len(shown)} entries):"]
    lines += [f"- {e.ts:%H:%M:%S} {_after_colon(e)}{cite(e.seq)}" for e in shown[:60]]
    if len(shown) > 60:
        lines.append(f"- … {len(shown) - 60} more; see `soctriage cases show {session.case.id} --ledger`")
    return "\n".join(lines)


def evidence_answer(session: ChatSession) -> str:
    verdict = session.last_event(VerdictRecorded)
    if verdict is None:
        return "There is no verdict yet, so no evidence was cited."
    by_seq = {e.seq: e for e in session.entries}
    at, v = verdict
    lines = [f"The verdict {v.disposition} (confidence {v.confidence}){cite(at)} rests on:"]
    for seq in v.evidence:
        if seq in by_seq:
            lines.append(f"- {_after_colon(by_seq[seq])}{cite(seq)}")
    return "\n".join(lines)


# ---- actions ---------------------------------------------------------------------------------------------


def actions_answer(session: ChatSession) -> str:
    trails = action_trails(session.entries)
    if not trails:
        return f"No response action was proposed for {session.case.id} (status {session.case.status})."
    lines = [f"Response actions of {session.case.id} (status {session.case.status}):"]
    for trail in trails:
        action = trail.action
        line = (
            f"- {action.id} {action.tool} {action.target}: guard {action.guard.decision}, now {action.status}"
        )
        if trail.decided_by:
            line += f", {_who(trail.decided_by)}"
        lines.append(line + cite(*trail.seqs))
    pending = [t.action.id for t in trails if t.action.status == "awaiting_approval"]
    if pending:
        lines.append(f"Waiting for a human: {', '.join(pending)}.")
    return "\n".join(lines)


def pending_answer(session: ChatSession) -> str:
    trails = action_trails(session.entries)
    pending = [t for t in trails if t.action.status == "awaiting_approval"]
    if not pending:
        settled = f" ({len(trails)} earlier action(s) are settled)" if trails else ""
        return f"No action of {session.case.id} is waiting for approval{settled}; the case is {session.case.status}."
    lines = [f"Waiting for a human decision on {session.case.id}:"]
    for trail in pending:
        action = trail.action
        expiry = f"; expires {action.expires_at:%Y-%m-%d %H:%M} UTC" if action.expires_at else ""
        lines.append(
            f"- {action.id} {action.tool} {action.target}: guard {action.guard.decision}"
            f" ({action.guard.reason}){expiry}{cite(*trail.seqs)}"
        )
    lines.append(
        f"Decide in the console or with: soctriage approve {session.case.id} ID --by NAME [--reject]."
    )
    return "\n".join(lines)


# ---- entities --------------------------------------------------------------------------------------------

_ENTITY_KINDS = (
    ("hostname", "host"),
    ("ip", "IP"),
    ("user", "user"),
    ("email", "email"),
    ("file", "file/process"),
    ("cmdline", "command line"),
    ("pid", "pid"),
    ("sha256", "sha256"),
    ("sha1", "sha1"),
    ("md5", "md5"),
    ("domain", "domain"),
    ("url", "URL"),
    ("sid", "SID"),
    ("technique", "ATT&CK technique"),
)


def entities_answer(session: ChatSession) -> str:
    facts = alert_facts(session.alert)
    lines = [f"Entities of {session.case.id}, from its alert{cite(1)}:"]
    for key, label in _ENTITY_KINDS:
        values = facts.get(key, [])
        if values:
            shown = ", ".join(v if len(v) <= 200 else v[:199] + "…" for v in values[:6])
            lines.append(f"- {label}: {shown}")
    own = {v.lower() for values in facts.values() for v in values}
    discovered: dict[str, list[int]] = {}
    for seq, result in session.events(ToolResultRecorded):
        for value in result.entities:
            if str(value).lower() not in own:
                discovered.setdefault(str(value), []).append(seq)
    if discovered:
        found = [f"{value}{cite(seqs[0])}" for value, seqs in list(discovered.items())[:10]]
        lines.append(f"- found by enrichment: {', '.join(found)}")
    if len(lines) == 1:
        return (
            f"The alert of {session.case.id} names no host, user, process, file or network entity{cite(1)}."
        )
    return "\n".join(lines)


async def kind_answer(session: ChatSession, question: str, kinds: list[str], fields: list[str]) -> str:
    """Entities of the kind asked for: from this case's alert first, then from the related case of the
    tenant the question describes best (questions often name another alert of the same incident), when that
    case is similar enough to count as related."""
    lines = []
    own_values = _pick(alert_facts(session.alert), kinds, fields)
    if own_values:
        lines.append(f"In this case's alert{cite(1)}: {own_values}.")
    seq, output = await session.lookup_output(
        "similar_cases", {"query": question, "k": 3, "include_this_case": True}, SimilarCasesResult
    )
    floor = related_floor(session.deps.settings, "question")
    others = [
        c for c in (output.cases if output else ()) if c.case_id != session.case.id and c.similarity >= floor
    ]
    top = others[0] if others else None
    if top is not None:
        other = session.deps.store.get_case(top.case_id)
        alert = (
            session.deps.store.get_alert(other.alert_ids[0], other.tenant)
            if other and other.alert_ids
            else None
        )
        if other is not None and other.tenant == session.case.tenant and alert is not None:
            values = _pick(alert_facts(alert), kinds, fields)
            if values:
                lines.append(
                    f"In the related case {other.id} ({alert.title}, similarity {top.similarity:.2f})"
                    f"{cite(seq)}: {values}."
                )
    if not lines:
        wanted = ", ".join(kinds + [f.removeprefix("field:") for f in fields])
        return f"The ledger of {session.case.id} records no {wanted}{cite(1)}."
    return " ".join(lines)


def _pick(facts: dict[str, list[str]], kinds: list[str], fields: list[str]) -> str:
    parts, shown = [], set()
    for key in fields + kinds:
        values = tuple(facts.get(key, ())[:5])
        if values and values not in shown:
            shown.add(values)
            parts.append(f"{key.removeprefix('field:')} {', '.join(values)}")
        if len(parts) == 2:
            break
    return "; ".join(parts)
