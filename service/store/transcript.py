"""A case's ledger as evidence: JSONL that can be re-verified offline, and Markdown/HTML for auditors."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from pydantic import ValidationError
from soctriage.service.domain import Case, LedgerEntry, canonical_json, format_ts
from soctriage.service.jsonl import jsonl_rows
from soctriage.service.ledger_events import (
    ActionExecuted,
    AlertReceived,
    ApprovalDecided,
    ApprovalRequested,
    GuardDecisionRecorded,
    StatusChange,
    ToolCallRequested,
    ToolResultRecorded,
    is_event,
)
from soctriage.service.ledger_notes import ApprovalExpired, ApprovalInvalid, DecisionRefused
from soctriage.service.store.chain import CaseVerification
from soctriage.service.store.checkpoint_citation import case_commitment
from soctriage.service.store.errors import CaseNotFoundError
from soctriage.service.store.proof import parse_checkpoint_text, split_note
from soctriage.service.store.store import Store

TranscriptFormat = Literal["jsonl", "md", "html"]
SUMMARY_CHARS = 160
HASH_PREFIX = 12


def export_transcript(store: Store, case_id: str, fmt: TranscriptFormat) -> str:
    """The case's transcript in `fmt`. Raises `CaseNotFoundError` for an unknown case."""
    case = store.get_case(case_id)
    if case is None:
        raise CaseNotFoundError(case_id)
    entries = store.entries(case_id)
    commitment = case_commitment(store, case_id, case.tenant)
    if fmt == "jsonl":
        lines = [entry_line(entry) for entry in entries]
        if commitment is not None:
            # Last, after the entries: a reader of entries skips it (read_entries), a verifier needs it.
            lines.append(canonical_json({"checkpoint": commitment}))
        return "".join(line + "\n" for line in lines)
    [check] = store.verify([case_id]).cases
    if fmt == "md":
        return _markdown(case, entries, check, _commitment_line(commitment))
    if fmt == "html":
        return _html(case, entries, check, _commitment_line(commitment))
    raise ValueError(f"unknown transcript format {fmt!r}; expected jsonl, md or html")


def entry_line(entry: LedgerEntry) -> str:
    """One JSONL line: every field, hashes included, so the file re-verifies with `verify_entries`."""
    return canonical_json({**entry.model_dump(mode="json"), "ts": format_ts(entry.ts)})


def read_entries(lines: Iterable[str], source: str = "<transcript>") -> Iterator[LedgerEntry]:
    """Parse the entries of an exported JSONL transcript (its `checkpoint` record is skipped); a bad line
    raises ValueError naming `source`, line and field."""
    for number, item in jsonl_rows(lines, source):
        if isinstance(item, dict) and item.keys() == {"checkpoint"}:
            continue
        try:
            yield LedgerEntry.model_validate(item)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "<entry>"
            raise ValueError(f"{source}:{number}: field {field}: {error['msg']}") from exc


def read_checkpoint_record(lines: Sequence[str]) -> Any:
    """The `checkpoint` record an export carries on its last line, or None."""
    last = next((line for line in reversed(lines) if line.strip()), "")
    try:
        item = json.loads(last)
    except json.JSONDecodeError:
        return None
    return item["checkpoint"] if isinstance(item, dict) and item.keys() == {"checkpoint"} else None


def summarize(entry: LedgerEntry) -> str:
    """A one-line human reading of an entry's payload, for the timeline (never the whole payload)."""
    text = _in_words(entry)
    if text is None:
        text = ", ".join(f"{key}={_short(value)}" for key, value in entry.payload.items())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _in_words(entry: LedgerEntry) -> str | None:
    """An alert or a status change in words; None for any other entry, or for one whose payload does not fit
    its model (an old or hand-written entry, which then shows as its fields)."""
    try:
        if is_event(entry, AlertReceived):
            alert = AlertReceived.model_validate(entry.payload).alert()
            host = (alert.device.hostname if alert.device else None) or "unknown host"
            return f"{alert.title} [{alert.severity.label}] on {host}"
        if is_event(entry, StatusChange):
            change = StatusChange.model_validate(entry.payload)
            return f"{change.from_} → {change.to}: {change.reason}"
    except ValidationError:
        pass
    return None


def _short(value: Any) -> str:
    return value if isinstance(value, str) else canonical_json(value)


def _verification_line(check: CaseVerification) -> str:
    if check.ok:
        return f"intact: {check.entries} entries verified"
    return f"FAILED at seq {check.bad_seq}: {check.problem}"


def _commitment_line(commitment: dict[str, Any] | None) -> str:
    if commitment is None:
        return "Checkpoint: no signed checkpoint covers this case yet (soctriage ledger checkpoint)"
    origin, size, _, extensions = parse_checkpoint_text(split_note(commitment["note"])[0])
    made = next((line.removeprefix("time ") for line in extensions if line.startswith("time ")), "?")
    return (
        f"Checkpoint: seq 1-{commitment['head_seq']} committed by the signed checkpoint of {origin} at tree "
        f"size {size} ({made}); the JSONL export carries it with the inclusion proof "
        "(soctriage ledger verify-file)"
    )


ACTION_HEAD = ("Action", "Tool", "Guard decision (rule)", "Approval", "Carried out")


# The entries that name an action: its call, result, guard decision, approval and execution, and the notes
# about its decision (which name no tool).
_ACTION_NOTES = (ApprovalInvalid, ApprovalExpired, DecisionRefused)
_ACTION_EVENTS = (
    ToolCallRequested,
    ToolResultRecorded,
    GuardDecisionRecorded,
    ApprovalRequested,
    ApprovalDecided,
    ActionExecuted,
    *_ACTION_NOTES,
)


def action_rows(entries: Sequence[LedgerEntry]) -> list[tuple[str, ...]]:
    """One row per proposed action: the guard's decision, the human decision, and what was carried out. An
    entry whose payload does not fit its model adds nothing to a row (the timeline still shows it)."""
    rows: dict[str, dict[str, str]] = {}
    for entry in entries:
        model = next((m for m in _ACTION_EVENTS if is_event(entry, m)), None)
        try:
            event = None if model is None else model.model_validate(entry.payload)
        except ValidationError:
            continue
        if event is None or event.action_id is None:
            continue
        tool = "?" if isinstance(event, _ACTION_NOTES) else event.tool
        row = rows.setdefault(event.action_id, {"tool": tool})
        if isinstance(event, GuardDecisionRecorded):
            row["guard"] = f"{event.decision} ({event.rule_id})"
        elif isinstance(event, ApprovalDecided):
            row["approval"] = f"{event.outcome} by {entry.actor.removeprefix('human:')}"
        elif isinstance(event, ApprovalRequested):
            row.setdefault("approval", "requested, not decided")
        elif isinstance(event, ActionExecuted):
            row["done"] = f"seq {entry.seq} ({event.status})"
    return [
        (aid, r["tool"], r.get("guard", "-"), r.get("approval", "not needed"), r.get("done", "no"))
        for aid, r in rows.items()
    ]


def _header_rows(case: Case) -> list[tuple[str, str]]:
    rows = [
        ("Case", case.id),
        ("Tenant", case.tenant),
        ("Status", case.status),
        ("Alerts", ", ".join(case.alert_ids)),
        ("Assignee", case.assignee or "-"),
        ("Created", format_ts(case.created_at)),
    ]
    rows += [(f"Reached {status}", format_ts(ts)) for status, ts in case.status_times.items()]
    verdict = case.verdict
    if verdict is None:
        rows.append(("Verdict", "none yet"))
    else:
        rows += [
            (
                "Verdict",
                f"{verdict.disposition} ({verdict.severity.label}, confidence {verdict.confidence:.2f})",
            ),
            ("Techniques", ", ".join(verdict.techniques) or "-"),
            ("Summary", verdict.summary),
            ("Evidence", ", ".join(f"seq {seq}" for seq in verdict.evidence) or "-"),
        ]
    return rows


def _timeline_cells(entry: LedgerEntry) -> tuple[str, ...]:
    return (
        str(entry.seq),
        format_ts(entry.ts),
        entry.actor,
        entry.kind,
        summarize(entry),
        entry.hash[:HASH_PREFIX],
    )


_TIMELINE_HEAD = ("Seq", "Time (UTC)", "Actor", "Kind", "Summary", "Hash")


def _md_cell(text: str) -> str:
    # Alert text is untrusted: neutralise HTML (many Markdown viewers render it) and table syntax.
    escaped = html.escape(text, quote=False).replace("|", "\\|").replace("`", "\\`")
    return " ".join(escaped.split())


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_md_cell(cell) for cell in cells) + " |"


def _markdown(case: Case, entries: list[LedgerEntry], check: CaseVerification, commitment: str) -> str:
    lines = [f"# Case transcript {_md_cell(case.id)}", "", "| Field | Value |", "|---|---|"]
    lines += [_md_row(row) for row in _header_rows(case)]
    actions = action_rows(entries)
    lines += ["", "## Actions and approvals", ""]
    if actions:
        lines += [_md_row(ACTION_HEAD), "|---|---|---|---|---|", *(_md_row(row) for row in actions)]
    else:
        lines.append("No action was proposed.")
    lines += ["", "## Timeline", "", _md_row(_TIMELINE_HEAD), "|---:|---|---|---|---|---|"]
    lines += [_md_row(_timeline_cells(e)) for e in entries]
    lines += [
        "",
        "## Verification",
        "",
        f"- Result: {_md_cell(_verification_line(check))}",
        f"- Head: seq {check.head_seq}, hash `{check.head_hash}`",
        f"- {_md_cell(commitment)}",
        "",
    ]
    return "\n".join(lines)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #d0d5dd;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f2f4f7}td.n{text-align:right}code{font-family:ui-monospace,monospace}
.ok{color:#067647;font-weight:600}.bad{color:#b42318;font-weight:600}.summary{word-break:break-word}
"""


def _html(case: Case, entries: list[LedgerEntry], check: CaseVerification, commitment: str) -> str:
    def e(text: object) -> str:
        return html.escape(str(text), quote=True)

    def table(head: Sequence[str], rows: Iterable[str]) -> str:
        titles = "".join(f"<th>{e(title)}</th>" for title in head)
        return f"<table><thead><tr>{titles}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

    header = "".join(f"<tr><th>{e(name)}</th><td>{e(value)}</td></tr>" for name, value in _header_rows(case))
    actions = action_rows(entries)
    action_table = (
        table(ACTION_HEAD, ("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in actions))
        if actions
        else "<p>No action was proposed.</p>"
    )
    timeline = table(
        _TIMELINE_HEAD,
        (
            "<tr><td class='n'>{}</td><td>{}</td><td>{}</td><td>{}</td><td class='summary'>{}</td>"
            "<td><code>{}</code></td></tr>".format(*(e(cell) for cell in _timeline_cells(entry)))
            for entry in entries
        ),
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>Case transcript {e(case.id)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Case transcript {e(case.id)}</h1><table>{header}</table>"
        f"<h2>Actions and approvals</h2>{action_table}"
        f"<h2>Timeline</h2>{timeline}"
        f"<h2>Verification</h2><p class='{'ok' if check.ok else 'bad'}'>{e(_verification_line(check))}</p>"
        f"<p>Head: seq {e(check.head_seq)}, hash <code>{e(check.head_hash)}</code></p><p>{e(commitment)}</p>"
        "</body></html>\n"
    )
