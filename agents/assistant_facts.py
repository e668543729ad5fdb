"""What the case assistant reads: a one-line digest of each ledger entry, and the entities of an alert sorted
by kind, so that both the builtin rules and a model can answer "which IP", "which command line" and cite."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError
from soctriage.service.alert_entities import OBSERVABLES, pick
from soctriage.service.domain import Alert, LedgerEntry
from soctriage.service.ledger_events import (
    ActionExecuted,
    AlertReceived,
    ApprovalDecided,
    ApprovalRequested,
    ChatMessage,
    Feedback,
    GuardDecisionRecorded,
    LedgerEvent,
    LlmCall,
    Reasoning,
    StatusChange,
    ToolCallRequested,
    ToolResultRecorded,
    VerdictRecorded,
)
from soctriage.tools.registry import default_registry

_IP = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_URL = re.compile(r"\bhttps?://[^\s'\"<>)]+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+(?: [\w.+-]+)?@[\w-]+(?:\.[\w-]+)+\b")
_SHA256 = re.compile(r"\b[a-f0-9]{64}\b", re.I)
_SHA1 = re.compile(r"\b[a-f0-9]{40}\b", re.I)
_MD5 = re.compile(r"\b[a-f0-9]{32}\b", re.I)
_SID = re.compile(r"\bS-1-\d+(?:-\d+)+\b")
_LINE = 220

# Which words in a question ask for which kind of fact, most specific first.
QUESTION_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cmdline", ("command line", "commandline", "cmdline", "command used", "command was")),
    ("pid", ("process id", "pid")),
    ("sha256", ("sha256", "sha-256", "file hash", "hash")),
    ("sha1", ("sha1", "sha-1")),
    ("md5", ("md5",)),
    ("url", ("url", "link", "web address")),
    ("email", ("email", "e-mail", "upn", "user principal")),
    ("ip", ("ip address", " ip ", "ip?", "address")),
    ("sid", (" sid", "security identifier")),
    ("hostname", ("hostname", "host name", "device name", "computer", "host", "device", "machine")),
    ("user", ("account", "user", "username")),
    ("file", ("file name", "filename", "file", "executable", "binary")),
    ("domain", ("domain",)),
    ("technique", ("technique", "att&ck", "mitre")),
)


def cite(*seqs: int | None) -> str:
    """How an answer cites the ledger entries it rests on: ` [seq 3, 7]`, or nothing when there are none."""
    found = sorted({s for s in seqs if s})
    return f" [seq {', '.join(map(str, found))}]" if found else ""


def question_kinds(question: str) -> list[str]:
    text = f" {question.lower()} "
    return [kind for kind, words in QUESTION_KINDS if any(w in text for w in words)]


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(key path, string) for every leaf of nested vendor data; JSON-encoded strings are opened too."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item, path)
    elif isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in "[{":
            try:
                yield from _strings(json.loads(stripped), path)
                return
            except ValueError:
                pass
        if stripped:
            yield path, stripped
    elif value is not None and not isinstance(value, bool):
        yield path, str(value)


def _add(facts: dict[str, list[str]], kind: str, value: str | int | None) -> None:
    if value is None or value == "":
        return
    text = str(value)
    bucket = facts.setdefault(kind, [])
    if text not in bucket:
        bucket.append(text)


# The fields an answer names, in the order it lists them within a kind (the destination IP before the source).
_FACT_FIELDS = (
    "device.hostname",
    "device.ip",
    "user.name",
    *(f"{p}.{f}" for p in ("process", "process.parent") for f in ("cmdline", "pid", "name", "sha256")),
    "file.name",
    "file.sha256",
    "file.sha1",
    "file.md5",
    "network.dst_ip",
    "network.src_ip",
    "network.domain",
    "network.url",
    OBSERVABLES,
)
# A question about "the file" means the program too.
_FACT_KIND = {"process": "file"}


def alert_facts(alert: Alert) -> dict[str, list[str]]:
    """The alert's entities by kind (ip, url, hostname, user, cmdline, pid, ...), plus `field:<name>` for every
    vendor field kept in `unmapped`, so a question naming a vendor field (AadDeviceId) finds it."""
    facts: dict[str, list[str]] = {}
    for entity in pick(alert, _FACT_FIELDS):
        _add(facts, _FACT_KIND.get(entity.kind, entity.kind), entity.value)
    for technique in alert.techniques:
        _add(facts, "technique", technique)
    for path, text in _strings(alert.unmapped):
        name = path.rsplit(".", 1)[-1].lower()
        _add(facts, f"field:{name}", text)
        if name in ("commandline", "cmdline", "command_line"):
            _add(facts, "cmdline", text)
        elif name in ("processid", "pid", "process_id"):
            _add(facts, "pid", text)
        elif name in ("hostname", "host_name", "computername", "devicename"):
            _add(facts, "hostname", text)
        elif name in ("accountname", "username", "user_name"):
            _add(facts, "user", text)
        for kind, pattern in (
            ("url", _URL),
            ("email", _EMAIL),
            ("sha256", _SHA256),
            ("sid", _SID),
            ("ip", _IP),
        ):
            for match in pattern.findall(text):
                _add(facts, kind, match)
        if not _SHA256.search(text):
            for kind, pattern in (("sha1", _SHA1), ("md5", _MD5)):
                for match in pattern.findall(text):
                    _add(facts, kind, match)
    return facts


def named_fields(question: str, facts: dict[str, list[str]]) -> list[str]:
    """Vendor field names the question mentions, e.g. `AadDeviceId`."""
    words = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z0-9_]{3,}", question)}
    return [key for key in facts if key.startswith("field:") and key.removeprefix("field:") in words]


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _result_summary(result: ToolResultRecorded) -> str:
    if result.status == "simulated":
        return "dry run, nothing was executed"
    if result.status != "ok":
        return f"{result.status}: {result.error}"
    try:
        return _short(default_registry().output(result.tool, result.output or {}).summary(), 300)
    except (KeyError, ValidationError):
        # A tool this build does not have, or an output an earlier build wrote: shown as it was written.
        return _short(result.output, 300)


def describe(entry: LedgerEntry) -> str:
    """One line: `seq N kind actor: what happened`."""
    # A note is shown whole, whatever its event: there is nothing in it to pick out.
    what = _short(entry.payload, 200) if entry.kind == "note" else _what(entry.event())
    return f"seq {entry.seq} {entry.kind} {entry.actor}: {what}"[: _LINE + 200]


def _what(event: LedgerEvent) -> str:
    match event:
        case AlertReceived():
            return _alert_line(event.alert())
        case Reasoning():
            return f"category {event.category}; hypotheses {_short(event.hypotheses)}"
        case ToolCallRequested():
            prefix = f"{event.action_id} " if event.action_id else ""
            because = f" because {_short(event.reason, 100)}" if event.reason else ""
            return f"{prefix}{event.tool}({_short(event.args, 100)}){because}"
        case ActionExecuted():
            return f"{event.action_id} {event.tool} {event.status} {_short(event.args, 80)}"
        case ToolResultRecorded():
            return f"{event.tool}: {_result_summary(event)}"
        case GuardDecisionRecorded():
            return f"{event.action_id} {event.tool} -> {event.decision}: {_short(event.reason)}"
        case ApprovalRequested():
            return f"{event.action_id} {event.tool} waits for a human until {event.expires_at}"
        case ApprovalDecided():
            return f"{event.action_id} {event.tool} {event.outcome}: {_short(event.detail)}"
        case VerdictRecorded():
            return (
                f"{event.disposition} (confidence {event.confidence}, severity {event.severity.get('label')}):"
                f" {_short(event.summary)}; rationale: {_short(event.rationale, 200)}; evidence {event.evidence}"
            )
        case StatusChange():
            return f"{event.from_} -> {event.to}: {_short(event.reason)}"
        case ChatMessage():
            return f"{event.role}: {_short(event.text, 160)}"
        case Feedback():
            return f"analyst disposition {event.disposition} ({event.reason_code}): {_short(event.note)}"
        case LlmCall():
            return f"model call {event.model or event.analyst} ({event.total_tokens} tokens)"
        case _:
            return _short(event.as_payload(), 200)


def _alert_line(alert: Alert) -> str:
    what = alert.title
    if alert.device and alert.device.hostname:
        what += f"; host {alert.device.hostname}"
    if alert.user and alert.user.name:
        what += f"; user {alert.user.name}"
    if alert.process and (alert.process.cmdline or alert.process.name):
        what += f"; process {_short(alert.process.cmdline or alert.process.name, 160)}"
    techniques = [a.technique_id for a in alert.attacks if a.technique_id]
    if techniques:
        what += f"; techniques {', '.join(techniques)}"
    return what + f"; severity {alert.severity.label}"
