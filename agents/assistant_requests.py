"""The builtin case assistant's answers to requests: what it refuses (closing or re-labelling a case, editing
the ledger, undoing containment, other tenants, running commands) and the response actions it proposes
through the guard for a human to decide, never takes."""

from __future__ import annotations

import json
import re
from typing import Any

from soctriage.agents.assistant_facts import alert_facts, cite
from soctriage.agents.assistant_session import ChatSession
from soctriage.agents.lifecycle import ActionTrail, action_trails
from soctriage.service.domain import Alert
from soctriage.tools.actions import proposable_actions

_PROPOSABLE = proposable_actions()
_ACTION_TOOLS = f"{', '.join(_PROPOSABLE[:-1])} and {_PROPOSABLE[-1]}"
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
        f"I can't run commands or do anything on hosts. The response actions I can propose are {_ACTION_TOOLS};"
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


def refusal(sentences: list[str]) -> str | None:
    """What the assistant says instead of doing what a sentence asks it must never do, or None."""
    return next(
        (text for pattern, text in _REFUSALS for sentence in sentences if pattern.search(sentence.strip())),
        None,
    )


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
