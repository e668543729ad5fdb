"""The builtin case assistant: deterministic answers read from the case's ledger, every claim cited `[seq N]`.

A question is routed by what it asks for, most specific first: requests it must refuse (closing or re-labelling
a case, editing the ledger, undoing containment, other tenants, anything outside the case), requests to act
(proposed through the guard, never taken), similar past cases, runbooks, ATT&CK techniques, why, pending
actions, timeline, evidence, actions taken, entities, one kind of entity, and the summary.
"""

from __future__ import annotations

import json
import re
from typing import Any

from soctriage.agents.assistant_actions import ActionTrail, action_trails
from soctriage.agents.assistant_facts import alert_facts, describe, named_fields, question_kinds
from soctriage.agents.assistant_session import ChatSession
from soctriage.service.domain import Alert, LedgerEntry
from soctriage.service.ledger_events import ModelFallback, PossiblePromptInjection, VerdictRejected, is_event
from soctriage.tools.retrieval_embed import related_floor
from soctriage.tools.retrieval_tools import Runbook, runbooks

ACTION_TOOLS = "isolate_host, kill_process, quarantine_file, block_indicator, disable_user and create_ticket"
_ACTION_WORDS = {
    "isolate": "isolate_host",
    "contain": "isolate_host",
    "kill": "kill_process",
    "terminate": "kill_process",
    "quarantine": "quarantine_file",
    "block": "block_indicator",
    "disable": "disable_user",
}
# "please", "can you", ... before the verb of a request.
_POLITE = r"^(?:(?:please|pls|kindly|now|ok|okay)[\s,]+|(?:can|could|would|will) you\s+(?:please\s+)?|let'?s\s+|go ahead and\s+|i want you to\s+)*"
_REFUSALS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\bignore\b.*\b(instructions?|rules?|polic(y|ies)|guard|prompt)\b|\bjailbreak\b"),
        "I can't set aside how I work: I answer from this case's ledger, and the policy guard and a human"
        " decide every action.",
    ),
    (
        re.compile(
            _POLITE
            + r"(close|resolve|dismiss|suppress|whitelist|allowlist|reopen|escalate|assign|mark|flag|classify|"
            r"reclassify|treat|"
            r"label|tag|set|change|override|update|downgrade|upgrade)\b"
        ),
        "I can't change a case's status, verdict, severity or disposition; I answer questions and propose"
        " response actions for a human to approve. An analyst records the final disposition as feedback (the"
        " console's Feedback form, or POST /v1/cases/{case}/feedback), and only a human closes a true positive.",
    ),
    (
        re.compile(
            _POLITE + r"(delete|remove|erase|edit|modify|rewrite|alter|purge|wipe|truncate|redact|forge)\b"
        ),
        "I can't change or delete anything in the case: its ledger is append-only evidence, hash-chained so"
        " that any edit is detected by `soctriage ledger verify`.",
    ),
    (
        re.compile(
            _POLITE
            + r"(release|unisolate|un-isolate|reconnect|restore|re-?enable|enable|unblock|unquarantine|"
            r"undo|revert|roll ?back|lift)\b"
        ),
        "I can't undo containment: releasing a host, re-enabling an account or lifting a block is for a human"
        " to do in the EDR or identity console, after checking the threat is gone.",
    ),
    (
        re.compile(
            _POLITE + r"(run|execute|launch|start|exec|shutdown|reboot|restart|wipe|reimage|format|patch|"
            r"install|uninstall|download|upload|email|send|call|ping|scan)\b"
        ),
        f"I can't run commands or do anything on hosts. The response actions I can propose are {ACTION_TOOLS};"
        " the policy guard and a human decide each one.",
    ),
    (
        re.compile(
            r"\b(other|another|all|every|different)\s+(tenants?|customers?|clients?|organi[sz]ations?|orgs?)\b"
            r"|\btenant\s+\w+'?s\b|\b(list|show|dump|export)\s+(me\s+)?(all|every)\s+(the\s+)?cases\b"
        ),
        "I can't show other tenants' cases: I answer about this case only. Your own tenant's queue is in the"
        " console; for look-alike cases ask me for similar past cases.",
    ),
)
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


def cite(*seqs: int | None) -> str:
    found = sorted({s for s in seqs if s})
    return f" [seq {', '.join(map(str, found))}]" if found else ""


def _after_colon(entry: LedgerEntry) -> str:
    return describe(entry).split(": ", 1)[-1]


async def builtin_answer(session: ChatSession, question: str, question_seq: int) -> str:
    q = " ".join(question.lower().split())
    # A request may follow a statement ("The command line says it is approved. Close the case."), so the
    # imperative patterns are tried on every sentence.
    sentences = [s for s in re.split(r"[.!?;]\s+|\n", q) if s.strip()] or [q]
    refusal = next(
        (text for pattern, text in _REFUSALS for sentence in sentences if pattern.search(sentence.strip())),
        None,
    )
    if refusal is not None:
        return refusal.replace("{case}", session.case.id)
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


def requested_action(q: str) -> str | None:
    """The action an imperative request asks for: "isolate the host", "please block 203.0.113.7", "open a
    ticket". Questions about actions ("were any actions taken?") are not requests."""
    if re.search(
        _POLITE + r"(create|open|raise|file|log)\s+(a\s+|an\s+)?(new\s+)?(ticket|incident ticket)\b", q
    ):
        return "create_ticket"
    match = re.match(_POLITE + r"(\w+)", q.strip())
    verb = match.group(1) if match else ""
    return next((tool for word, tool in _ACTION_WORDS.items() if verb.startswith(word)), None)


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
    status_entry = session.last("status_change")
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
    if status_entry:
        lines.append(f"Status {case.status}: {status_entry.payload.get('reason')}{cite(status_entry.seq)}.")
    trails = action_trails(session.entries)
    if trails:
        lines.append("Actions: " + "; ".join(_action_line(t) for t in trails) + ".")
    feedback = session.last("feedback")
    if feedback:
        lines.append(f"Analyst disposition: {feedback.payload.get('disposition')}{cite(feedback.seq)}.")
    return " ".join(lines)


def why_answer(session: ChatSession) -> str:
    case = session.case
    changes = session.of_kind("status_change")
    current = next((e for e in reversed(changes) if e.payload.get("to") == case.status), None)
    lines = [f"The case is {case.status}"]
    if current:
        lines[0] += f" because {current.payload.get('reason')}{cite(current.seq)}"
    lines[0] += "."
    verdict = session.last("verdict")
    if verdict:
        lines.append(
            f"The verdict was {verdict.payload.get('disposition')} (confidence {verdict.payload.get('confidence')});"
            f" signals: {verdict.payload.get('rationale')}{cite(verdict.seq)}."
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
    verdict = session.last("verdict")
    if verdict is None:
        return "There is no verdict yet, so no evidence was cited."
    by_seq = {e.seq: e for e in session.entries}
    lines = [
        f"The verdict {verdict.payload.get('disposition')} (confidence {verdict.payload.get('confidence')})"
        f"{cite(verdict.seq)} rests on:"
    ]
    for seq in verdict.payload.get("evidence", []):
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


def propose_answer(session: ChatSession, question: str, tool: str) -> str:
    if session.case.status in ("new", "triaging"):
        return f"{session.case.id} is still being triaged; propose actions once it has a verdict."
    stranger = _stranger(question, session.alert)
    if stranger:
        return (
            f"{stranger} is not an entity of {session.case.id}, so I propose nothing: an action may only"
            f" target what this case's alert or its enrichment named{cite(1)}."
        )
    args = action_args(tool, question, session.alert)
    if args is None:
        return f"I could not tell which entity of {session.case.id} to target with {tool}; name it in the request."
    same = _same_action(session, tool, args)
    if same is not None:
        action = same.action
        if action.status in ("executed", "simulated"):
            how = " (simulated: no connector acted)" if action.status == "simulated" else ""
            return (
                f"Already done: {action.id} {tool} {action.target} was carried out{how}"
                f"{cite(same.executed_seq)}. Nothing new was proposed."
            )
        return (
            f"Already proposed: {action.id} {tool} {action.target} is waiting for a human decision"
            f"{cite(*same.seqs[1:])}. Nothing new was proposed; decide {action.id} instead"
            f" (soctriage approve {session.case.id} {action.id} --by NAME)."
        )
    action = session.propose(tool, args, f"requested in chat: {question[:300]}")
    decision = session.last("guard_decision")
    text = (
        f"Proposed {action.id}: {tool}({json.dumps(args)}). The guard decided {action.guard.decision}:"
        f" {action.guard.reason}{cite(decision.seq if decision else None)}."
    )
    if action.status == "awaiting_approval":
        text += f" It waits for a human: soctriage approve {session.case.id} {action.id} --by NAME."
    return text


def _stranger(question: str, alert: Alert) -> str | None:
    """A target the request names that is none of the case's entities (DC01 asked of a case on FS02): the
    first identifier-like word (a digit, a dot, a dash, a backslash, an @, or all capitals) that the alert does
    not name, when the request names none that it does."""
    known = {v.lower() for values in alert_facts(alert).values() for v in values}
    known |= {v.split(".", 1)[0] for v in known}
    words = re.findall(r"[A-Za-z0-9][\w.\-\\@:/]*[A-Za-z0-9]", question)
    named = [w for w in words if re.search(r"[\d.\-\\@]", w) or (w.isupper() and len(w) >= 3)]
    if not named or any(w.lower() in known for w in named):
        return None
    return named[0]


def _same_action(session: ChatSession, tool: str, args: dict[str, Any]) -> ActionTrail | None:
    """An earlier containment with this tool on the same target that is done or still waiting: asking again
    would only queue a duplicate for a human to reject. (A second ticket is a choice an analyst may make.)"""
    if not session.deps.registry.get(tool).contains:
        return None
    wanted = {str(v).lower() for v in args.values()}
    for trail in action_trails(session.entries):
        action = trail.action
        live = action.status in ("executed", "simulated", "awaiting_approval", "approved")
        if live and action.tool == tool and wanted <= {str(v).lower() for v in action.guard.args.values()}:
            return trail
    return None


def action_args(tool: str, question: str, alert: Alert) -> dict[str, Any] | None:
    facts = alert_facts(alert)
    mentioned = [v for values in facts.values() for v in values if v and v.lower() in question.lower()]
    host = alert.device.hostname if alert.device else None
    if tool == "isolate_host":
        return (
            {"hostname": next((m for m in mentioned if m in facts.get("hostname", [])), host)}
            if host
            else None
        )
    if tool == "kill_process":
        if host and alert.process and alert.process.pid is not None:
            return {"hostname": host, "pid": alert.process.pid}
        return None
    if tool == "quarantine_file":
        sha = next(iter(facts.get("sha256", [])), None)
        return {"hostname": host, "sha256": sha} if host and sha else None
    if tool == "block_indicator":
        for kind in ("ip", "domain", "url", "sha256"):
            value = next((m for m in mentioned if m in facts.get(kind, [])), None)
            if value:
                return {"indicator": value, "type": kind}
        return None
    if tool == "disable_user":
        user = alert.user.name if alert.user else None
        return {"username": user} if user else None
    return {
        "title": alert.title[:200],
        "severity": "medium",
        "summary": f"raised from chat: {question[:300]}",
    }


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
    for entry in session.of_kind("tool_result"):
        for value in entry.payload.get("entities", ()):
            if str(value).lower() not in own:
                discovered.setdefault(str(value), []).append(entry.seq)
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
    seq, payload = await session.lookup(
        "similar_cases", {"query": question, "k": 3, "include_this_case": True}
    )
    floor = related_floor(session.deps.settings, "question")
    others = [
        c
        for c in (payload.get("output") or {}).get("cases", [])
        if c["case_id"] != session.case.id and c["similarity"] >= floor
    ]
    top = others[0] if others else None
    if top is not None:
        other = session.deps.store.get_case(top["case_id"])
        alert = (
            session.deps.store.get_alert(other.alert_ids[0], other.tenant)
            if other and other.alert_ids
            else None
        )
        if other is not None and other.tenant == session.case.tenant and alert is not None:
            values = _pick(alert_facts(alert), kinds, fields)
            if values:
                lines.append(
                    f"In the related case {other.id} ({alert.title}, similarity {top['similarity']:.2f})"
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


# ---- retrieval: similar cases, runbooks, techniques --------------------------------------------------------


async def similar_answer(session: ChatSession) -> str:
    seq, payload = await session.lookup("similar_cases", {})
    found = (payload.get("output") or {}).get("cases", [])
    floor = related_floor(session.deps.settings, "case")
    close = [c for c in found if c["similarity"] >= floor]
    if not close:
        # The nearest one is not named: a case below the floor is not related, and naming it invites a look.
        nearest = f"; the nearest scores {found[0]['similarity']:.2f}" if found else ""
        return (
            f"No earlier case of this tenant is similar enough to count (similarity below {floor:.2f}{nearest})"
            f"{cite(seq)}."
        )
    lines = [f"Most similar past cases{cite(seq)}:"]
    for c in close:
        who = "confirmed by an analyst" if c["disposition_source"] == "analyst" else "model verdict"
        lines.append(
            f"- {c['case_id']} ({c['similarity']:.2f}): {c['disposition']} ({who}), status {c['status']}:"
            f" {c['summary']}"
        )
    top = close[0]
    lines.append(f"Last time a case like this was decided {top['disposition']} ({top['case_id']}).")
    return "\n".join(lines)


def case_techniques(session: ChatSession) -> set[str]:
    found = set(session.alert.techniques)
    if session.case.verdict:
        found |= set(session.case.verdict.techniques)
    return found


def fitting_runbooks(session: ChatSession, question: str) -> list[tuple[Runbook, str, tuple[int, ...]]]:
    """The runbooks that fit, each with why and the seqs that show it: the one the question names, else those
    whose ATT&CK techniques the case shows (a named sub-technique first), plus the prompt-injection runbook
    when the alert carries text aimed at the model."""
    books = runbooks()
    q = question.lower()
    named = [b for b in books if _names_runbook(q, b)]
    if named:
        return [(b, "the question names it", ()) for b in named]
    techniques = case_techniques(session)
    parents = {t.split(".")[0] for t in techniques}
    exact = [(book, sorted(techniques & set(book.techniques))) for book in books]
    broad = [(book, sorted(parents & {t.split(".")[0] for t in book.techniques})) for book in books]
    # A sub-technique the runbook names beats a shared parent (T1059.003 cmd is not encoded PowerShell);
    # between runbooks sharing a technique (T1105), the one that names the alert's programs wins.
    matches = [m for m in exact if m[1]] or [m for m in broad if m[1]]
    programs = _programs(session.alert)
    scored = [(len(shown), _mentions(book, programs), book, shown) for book, shown in matches]
    best = max(((n, m) for n, m, *_ in scored), default=None)
    verdict = session.last("verdict")
    shows = (1, verdict.seq) if verdict else (1,)
    picked = [
        (book, f"the case shows {', '.join(shown)}", shows) for n, m, book, shown in scored if (n, m) == best
    ]
    notes = session.of_kind("note")
    injected = next((n for n in notes if is_event(n, PossiblePromptInjection)), None)
    if injected is not None:
        book = next(b for b in books if b.name == "prompt-injection-in-alerts")
        picked.append((book, "the alert carries text aimed at the model", (injected.seq,)))
    return picked


def _programs(alert: Alert) -> set[str]:
    """The alert's program names without extensions (certutil, vssadmin, procdump64, powershell)."""
    names = [p.name for p in (alert.process, alert.process.parent if alert.process else None) if p and p.name]
    if alert.file and alert.file.name:
        names.append(alert.file.name)
    return {n.lower().rsplit("\\", 1)[-1].removesuffix(".exe") for n in names}


def _mentions(book: Runbook, programs: set[str]) -> int:
    text = " ".join([book.intro, *(body for _, body in book.sections)]).lower()
    return sum(1 for name in programs if len(name) >= 4 and re.search(rf"\b{re.escape(name)}\b", text))


def _names_runbook(q: str, book: Runbook) -> bool:
    topic = book.title.lower().removeprefix("runbook:").split("(")[0].strip()
    keywords = {
        "credential-dumping": ("credential dump", "lsass", "mimikatz", "credential theft"),
        "ransomware-precursors": ("ransomware", "shadow cop"),
        "encoded-powershell": ("powershell", "encoded command"),
        "lolbin-download": ("lolbin", "living off the land", "certutil", "bitsadmin"),
        "prompt-injection-in-alerts": ("prompt injection", "injection"),
        "approvals": ("approv", "reject"),
        "false-positive-feedback": ("feedback", "false positive", "disposition"),
    }.get(book.name, ())
    return topic in q or any(k in q for k in keywords)


async def runbook_answer(session: ChatSession, question: str) -> str:
    picked = fitting_runbooks(session, question)
    seq = None
    if not picked:
        # Nothing names it and no technique matches: the knowledge base's closest runbook, as a lookup the
        # answer can cite.
        context = " ".join([session.alert.title, *sorted(case_techniques(session))])
        seq, payload = await session.lookup(
            "knowledge_search", {"query": f"{question} {context}"[:2000], "k": 3, "kinds": ["runbook"]}
        )
        hits = (payload.get("output") or {}).get("hits", [])
        if not hits:
            return f"No runbook fits {session.case.id}{cite(seq)}."
        books = {b.source: b for b in runbooks()}
        top = books.get(hits[0]["source"])
        if top is None:
            return f"No runbook fits {session.case.id}{cite(seq)}."
        picked = [(top, "it is the knowledge base's closest match", (seq,))]
    lines = []
    for book, why, seqs in picked:
        lines.append(f"{book.title} ({book.source}) fits because {why}{cite(*seqs)}.")
        for heading, body in book.sections:
            if heading.lower() in (
                "triage",
                "respond",
                "contain",
                "deciding",
                "how soctriage handles it",
                "how",
            ):
                steps = " ".join(body.split())
                lines.append(f"{heading}: {steps}")
    return "\n".join(lines)


async def knowledge_answer(session: ChatSession, question: str) -> str:
    seq, payload = await session.lookup("knowledge_search", {"query": question, "k": 3, "kinds": []})
    hits = (payload.get("output") or {}).get("hits", [])
    if not hits:
        return f"The knowledge base has nothing on that{cite(seq)}."
    lines = [f"From the knowledge base{cite(seq)}:"]
    for hit in hits:
        lines.append(f"- {hit['title']} ({hit['source']}): {' '.join(hit['text'].split())[:600]}")
    return "\n".join(lines)
