"""The case assistant: analysts chat with one case, and every answer rests on, and cites, its ledger.

Each question and each answer is a `chat_message` ledger entry (actor `human:<name>`, then `assistant`).
Lookups the assistant makes (similar past cases, the knowledge base, threat intel, ...) are read-tier tool
calls written to the ledger like the graph's, so an answer can cite them. A proposed action goes through the
guard and waits for a human (agents/assistant_actions.py); the assistant never acts.

Two responders: the builtin one answers deterministically from the ledger (summary, timeline, evidence,
actions, why the case is in its status, entities, what was decided on similar past cases, runbooks), and an
OpenAI-compatible model answers with read-only tools, streamed token by token.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from soctriage.agents.assistant_actions import ACTOR, case_context, proposals, propose
from soctriage.agents.assistant_facts import alert_facts, describe, named_fields, question_kinds
from soctriage.agents.deps import Deps
from soctriage.agents.llm import ChatClient, LLMError, LLMResult
from soctriage.agents.prompting import fence, load_prompt
from soctriage.agents.state import PlannedAction, ProposedAction
from soctriage.service.domain import Alert, Case, LedgerEntry
from soctriage.tools import ToolContext
from soctriage.tools.retrieval import case_document, open_index

MAX_QUESTION_CHARS = 4000
MAX_TOOL_ROUNDS = 4
HISTORY_TURNS = 6
_CITE = re.compile(r"\[seq\s*([\d,\s]+)\]", re.I)
_ACTION_WORDS = {
    "isolate": "isolate_host",
    "contain": "isolate_host",
    "kill": "kill_process",
    "quarantine": "quarantine_file",
    "block": "block_indicator",
    "disable": "disable_user",
}
PROPOSE_TOOL = {
    "type": "function",
    "function": {
        "name": "propose_action",
        "description": "Propose a response action for this case (isolate_host, kill_process, quarantine_file,"
        " block_indicator, disable_user, create_ticket). The policy guard decides and a human approves;"
        " nothing runs until then.",
        "parameters": {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "description": "the action tool's name"},
                "args": {"type": "object", "description": "the action tool's arguments"},
                "reason": {"type": "string", "description": "why, citing ledger seqs"},
            },
            "required": ["tool", "args", "reason"],
        },
    },
}


class AssistantError(LookupError):
    """The case does not exist, or the question is empty or too long."""


class ChatAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    case_id: str
    question_seq: int
    answer_seq: int
    answer: str
    citations: tuple[int, ...] = Field(description="ledger seqs the answer cites (all exist in the case)")
    proposals: tuple[PlannedAction, ...] = ()
    model: str


ChatEvent = str | ChatAnswer


def citations(text: str, head: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(valid, invalid) seq numbers cited as `[seq N]` / `[seq N, M]` in `text`."""
    cited = [int(n) for group in _CITE.findall(text) for n in re.findall(r"\d+", group)]
    unique = tuple(dict.fromkeys(cited))
    return tuple(n for n in unique if 1 <= n <= head), tuple(n for n in unique if not 1 <= n <= head)


class _Session:
    """One question's working state: the case, its alert, the ledger as it grows, the tool context."""

    def __init__(self, deps: Deps, case: Case, alert: Alert) -> None:
        self.deps, self.case, self.alert = deps, case, alert
        self.entries = deps.store.entries(case.id)
        self.ctx: ToolContext = case_context(deps, case, alert, self.entries)
        self.proposed: list[PlannedAction] = []

    def refresh(self) -> None:
        self.entries = self.deps.store.entries(self.case.id)
        self.case = self.deps.store.get_case(self.case.id) or self.case

    async def lookup(self, tool: str, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run a read-tier tool and write the call and its result; returns (result seq, payload)."""
        if tool not in self.deps.registry.names("read"):
            payload: dict[str, Any] = {"tool": tool, "status": "refused", "error": "the assistant only reads"}
        else:
            outcome = await self.deps.registry.run(self.ctx, tool, args)
            payload = outcome.model_dump(mode="json", exclude={"case_id"}, exclude_none=True)
        _, result = self.deps.store.append_many(
            self.case.id,
            [(ACTOR, "tool_call", {"tool": tool, "args": args}), (ACTOR, "tool_result", payload)],
        )
        self.refresh()
        return result.seq, payload

    def propose(self, tool: str, args: dict[str, Any], reason: str) -> PlannedAction:
        action = propose(
            self.deps,
            self.case,
            self.alert,
            self.entries,
            ProposedAction(tool=tool, args=args, reason=reason),
        )
        self.proposed.append(action)
        self.refresh()
        return action

    def last(self, kind: str) -> LedgerEntry | None:
        return next((e for e in reversed(self.entries) if e.kind == kind), None)

    def of_kind(self, *kinds: str) -> list[LedgerEntry]:
        return [e for e in self.entries if e.kind in kinds]


class CaseAssistant:
    """Answers questions about cases. `client` is the OpenAI-compatible model; None means builtin."""

    def __init__(self, deps: Deps, client: ChatClient | None = None, *, label: str = "builtin") -> None:
        self.deps = deps
        self.client = client
        self.name = label if client is not None else "builtin"

    async def ask(self, case_id: str, question: str, *, by: str) -> ChatAnswer:
        answer = None
        async for event in self.stream(case_id, question, by=by):
            if isinstance(event, ChatAnswer):
                answer = event
        assert answer is not None
        return answer

    async def stream(self, case_id: str, question: str, *, by: str) -> AsyncIterator[ChatEvent]:
        """Yields the answer's text as it is produced, then the recorded `ChatAnswer`."""
        question = question.strip()
        if not question:
            raise AssistantError("question: must not be empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise AssistantError(f"question: longer than {MAX_QUESTION_CHARS} characters")
        case = self.deps.store.get_case(case_id)
        if case is None or not case.alert_ids:
            raise AssistantError(f"case {case_id} does not exist")
        alert = self.deps.store.get_alert(case.alert_ids[0])
        if alert is None:
            raise AssistantError(f"case {case_id}: its alert is not stored")
        asked = self.deps.record(case_id, f"human:{by}", "chat_message", {"role": "user", "text": question})
        session = _Session(self.deps, case, alert)
        parts: list[str] = []
        model = self.name
        if self.client is None:
            text = await _builtin_answer(session, question, asked.seq)
            for piece in re.findall(r"\S+\s*|\s+", text):
                parts.append(piece)
                yield piece
        else:
            try:
                async for piece in self._model_answer(session, question, asked.seq):
                    parts.append(piece)
                    yield piece
            except LLMError as exc:
                session.deps.record(
                    case_id, ACTOR, "llm_call", {**exc.result.ledger_payload(), "analyst": self.name}
                )
                fallback = f"\n\n(The model endpoint failed: {exc}. Builtin answer:)\n"
                text = fallback + await _builtin_answer(session, question, asked.seq)
                model = f"builtin (fallback from {self.name})"
                parts.append(text)
                yield text
        text = "".join(parts).strip()
        session.refresh()
        head = session.entries[-1].seq
        valid, invalid = citations(text, head)
        payload: dict[str, Any] = {
            "role": "assistant",
            "text": text,
            "in_reply_to": asked.seq,
            "citations": list(valid),
            "model": model,
            "proposals": [a.id for a in session.proposed],
        }
        if invalid:
            payload["invalid_citations"] = list(invalid)
        answered = self.deps.record(case_id, ACTOR, "chat_message", payload)
        yield ChatAnswer(
            case_id=case_id,
            question_seq=asked.seq,
            answer_seq=answered.seq,
            answer=text,
            citations=valid,
            proposals=tuple(session.proposed),
            model=model,
        )

    async def _model_answer(self, session: _Session, question: str, question_seq: int) -> AsyncIterator[str]:
        assert self.client is not None
        prompt = load_prompt("assistant")
        digest = "\n".join(
            describe(e) for e in session.entries if e.seq < question_seq and e.kind != "llm_call"
        )
        system = prompt.render(
            case_id=session.case.id,
            tenant=session.case.tenant,
            status=session.case.status,
            ledger=fence("ledger", digest),
        )
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        messages += _history(session.entries, question_seq)
        messages.append({"role": "user", "content": question})
        tools = [*self.deps.registry.openai_tools(self.deps.registry.names("read")), PROPOSE_TOOL]
        for _ in range(MAX_TOOL_ROUNDS):
            result: LLMResult | None = None
            async for event in self.client.stream(
                messages, tools=tools, prompt_hashes={prompt.name: prompt.sha256}
            ):
                if isinstance(event, str):
                    yield event
                else:
                    result = event
            assert result is not None
            session.deps.record(
                session.case.id, ACTOR, "llm_call", {**result.ledger_payload(), "analyst": self.name}
            )
            if not result.tool_calls:
                return
            messages.append(
                {
                    "role": "assistant",
                    "content": result.content or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in result.tool_calls
                    ],
                }
            )
            for call in result.tool_calls:
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": await _run_call(session, call)}
                )
        yield "\n\n(Stopped after the lookup budget; ask a narrower question.)"


async def _run_call(session: _Session, call: Any) -> str:
    """One tool call of the model, as the text of its `tool` message (the model sees the ledger seq)."""
    if call.name == "propose_action":
        args = call.arguments
        action = session.propose(
            str(args.get("tool", "")), dict(args.get("args") or {}), str(args.get("reason", ""))
        )
        seq = session.last("guard_decision")
        return json.dumps(
            {
                "action_id": action.id,
                "guard_decision": action.guard.decision,
                "reason": action.guard.reason,
                "status": action.status,
                "seq": seq.seq if seq else None,
            }
        )
    seq, payload = await session.lookup(call.name, call.arguments)
    return fence("tool-result", {"seq": seq, **payload})


def _history(entries: list[LedgerEntry], before: int) -> list[dict[str, Any]]:
    turns = [e for e in entries if e.kind == "chat_message" and e.seq < before]
    return [
        {"role": "assistant" if e.actor == ACTOR else "user", "content": str(e.payload.get("text", ""))}
        for e in turns[-2 * HISTORY_TURNS :]
    ]


# ---- the builtin responder -------------------------------------------------------------------------------


def _cite(*seqs: int | None) -> str:
    found = sorted({s for s in seqs if s})
    return f" [seq {', '.join(map(str, found))}]" if found else ""


async def _builtin_answer(session: _Session, question: str, question_seq: int) -> str:
    q = question.lower()
    action = _requested_action(q)
    if action:
        return _builtin_propose(session, question, action)
    if any(
        w in q for w in ("last time", "before", "similar", "previous", "past case", "precedent", "seen this")
    ):
        return await _builtin_similar(session)
    if any(w in q for w in ("runbook", "how do i", "how should", "what should", "playbook", "respond to")):
        return await _builtin_knowledge(session, question)
    if re.search(r"\bwhat is t\d{4}|\bt\d{4}(\.\d{3})?\b", q) and "which" not in q:
        return await _builtin_knowledge(session, question)
    if "why" in q or "reason" in q:
        return _builtin_why(session)
    if any(w in q for w in ("timeline", "what happened", "sequence", "steps", "history")):
        return _builtin_timeline(session, question_seq)
    if "evidence" in q or "based on" in q:
        return _builtin_evidence(session)
    if any(w in q for w in ("action", "contain", "approval", "pending", "respon", "did we do")):
        return _builtin_actions(session)
    kinds = question_kinds(question)
    fields = named_fields(question, alert_facts(session.alert))
    if kinds or fields:
        return await _builtin_entities(session, question, kinds, fields)
    return _builtin_summary(session)


def _requested_action(q: str) -> str | None:
    """The action an imperative request asks for: "isolate the host", "please block 203.0.113.7", "open a
    ticket". Questions about actions ("were any actions taken?") are not requests."""
    if re.search(r"\b(?:create|open|raise|file)\s+(?:a\s+)?ticket\b", q):
        return "create_ticket"
    match = re.match(r"^(?:please\s+|can you\s+|could you\s+|let'?s\s+|go ahead and\s+)?(\w+)", q.strip())
    verb = match.group(1) if match else ""
    return next(
        (tool for word, tool in _ACTION_WORDS.items() if verb.startswith(word) and word != "ticket"), None
    )


def _builtin_summary(session: _Session) -> str:
    case, alert = session.case, session.alert
    verdict_entry = session.last("verdict")
    status_entry = session.last("status_change")
    lines = [f"Case {case.id}: {alert.title}{_cite(1)}."]
    if case.verdict and verdict_entry:
        v = case.verdict
        lines.append(
            f"Verdict: {v.disposition} at confidence {v.confidence:.2f}, severity {v.severity.label}:"
            f" {v.summary}{_cite(verdict_entry.seq)}."
        )
        if v.techniques:
            lines.append(f"Techniques: {', '.join(v.techniques)}.")
    else:
        lines.append("There is no verdict yet.")
    if status_entry:
        lines.append(f"Status {case.status}: {status_entry.payload.get('reason')}{_cite(status_entry.seq)}.")
    feedback = session.last("feedback")
    if feedback:
        lines.append(f"Analyst disposition: {feedback.payload.get('disposition')}{_cite(feedback.seq)}.")
    return " ".join(lines)


def _builtin_why(session: _Session) -> str:
    case = session.case
    changes = session.of_kind("status_change")
    current = next((e for e in reversed(changes) if e.payload.get("to") == case.status), None)
    lines = [f"The case is {case.status}"]
    if current:
        lines[0] += f" because {current.payload.get('reason')}{_cite(current.seq)}"
    lines[0] += "."
    verdict = session.last("verdict")
    if verdict:
        lines.append(
            f"The verdict was {verdict.payload.get('disposition')} (confidence {verdict.payload.get('confidence')});"
            f" signals: {verdict.payload.get('rationale')}{_cite(verdict.seq)}."
        )
    for note in session.of_kind("note"):
        event = note.payload.get("event")
        if event in ("possible_prompt_injection", "model_fallback", "verdict_rejected"):
            detail = note.payload.get("reason") or ", ".join(note.payload.get("markers", []))
            lines.append(f"Note {event}: {detail}{_cite(note.seq)}.")
    return " ".join(lines)


def _builtin_timeline(session: _Session, before: int) -> str:
    shown = [e for e in session.entries if e.seq < before and e.kind not in ("llm_call", "chat_message")]
    lines = [f"Timeline of {session.case.id} ({len(shown)} entries):"]
    lines += [f"- {e.ts:%H:%M:%S} {describe(e).split(': ', 1)[-1]}{_cite(e.seq)}" for e in shown[:60]]
    if len(shown) > 60:
        lines.append(f"- … {len(shown) - 60} more; see `soctriage cases show {session.case.id} --ledger`")
    return "\n".join(lines)


def _builtin_evidence(session: _Session) -> str:
    verdict = session.last("verdict")
    if verdict is None:
        return "There is no verdict yet, so no evidence was cited."
    by_seq = {e.seq: e for e in session.entries}
    lines = [f"The verdict{_cite(verdict.seq)} rests on:"]
    for seq in verdict.payload.get("evidence", []):
        if seq in by_seq:
            lines.append(f"- {describe(by_seq[seq]).split(': ', 1)[-1]}{_cite(seq)}")
    return "\n".join(lines)


def _builtin_actions(session: _Session) -> str:
    entries = session.of_kind("guard_decision", "approval_requested", "approval_decided", "action_executed")
    if not entries:
        return f"No response action was proposed for {session.case.id} (status {session.case.status})."
    lines = [f"Response actions of {session.case.id} (status {session.case.status}):"]
    lines += [f"- {describe(e).split(': ', 1)[-1]}{_cite(e.seq)}" for e in entries]
    pending = [a.id for a in proposals(session.entries) if a.status == "awaiting_approval"]
    if pending:
        lines.append(
            f"Waiting for a human: {', '.join(pending)} (soctriage approve {session.case.id} ID --by NAME)."
        )
    return "\n".join(lines)


async def _builtin_similar(session: _Session) -> str:
    seq, payload = await session.lookup("similar_cases", {})
    cases = (payload.get("output") or {}).get("cases", [])
    if not cases:
        return f"No earlier case of this tenant looks like this one{_cite(seq)}."
    lines = [f"Most similar past cases{_cite(seq)}:"]
    for c in cases:
        who = "confirmed by an analyst" if c["disposition_source"] == "analyst" else "model verdict"
        lines.append(
            f"- {c['case_id']} ({c['similarity']:.2f}): {c['disposition']} ({who}), status {c['status']}: {c['summary']}"
        )
    top = cases[0]
    lines.append(f"Last time a case like this was decided {top['disposition']} ({top['case_id']}).")
    return "\n".join(lines)


async def _builtin_knowledge(session: _Session, question: str) -> str:
    q = question.lower()
    wanted = (
        ["runbook"]
        if any(w in q for w in ("runbook", "how do", "how should", "what should", "respond"))
        else []
    )
    seq, payload = await session.lookup("knowledge_search", {"query": question, "k": 3, "kinds": wanted})
    hits = (payload.get("output") or {}).get("hits", [])
    if not hits:
        return f"The knowledge base has nothing on that{_cite(seq)}."
    lines = [f"From the knowledge base{_cite(seq)}:"]
    for hit in hits:
        lines.append(f"- {hit['title']} ({hit['source']}): {' '.join(hit['text'].split())[:600]}")
    return "\n".join(lines)


async def _builtin_entities(session: _Session, question: str, kinds: list[str], fields: list[str]) -> str:
    """Entities of the kind asked for: from this case's alert, and from the related case of the tenant the
    question describes best (questions often name another alert of the same incident)."""
    own = alert_facts(session.alert)
    lines = []
    own_values = _pick(own, kinds, fields)
    if own_values:
        lines.append(f"In this case's alert{_cite(1)}: {own_values}.")
    seq, payload = await session.lookup(
        "similar_cases", {"query": question, "k": 3, "include_this_case": True}
    )
    related = (payload.get("output") or {}).get("cases", [])
    if related and related[0]["case_id"] != session.case.id:
        other = session.deps.store.get_case(related[0]["case_id"])
        alert = session.deps.store.get_alert(other.alert_ids[0]) if other and other.alert_ids else None
        if other is not None and other.tenant == session.case.tenant and alert is not None:
            values = _pick(alert_facts(alert), kinds, fields)
            if values:
                lines.insert(
                    0,
                    f"In the related case {other.id} ({alert.title}, similarity {related[0]['similarity']:.2f}){_cite(seq)}: {values}.",
                )
    if not lines:
        wanted = ", ".join(kinds + [f.removeprefix("field:") for f in fields])
        return f"The ledger of {session.case.id} records no {wanted}{_cite(1)}."
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


def _builtin_propose(session: _Session, question: str, tool: str) -> str:
    if session.case.status in ("new", "triaging"):
        return f"{session.case.id} is still being triaged; propose actions once it has a verdict."
    args = _action_args(tool, question, session.alert)
    if args is None:
        return f"I could not tell which entity of {session.case.id} to target with {tool}; name it in the request."
    action = session.propose(tool, args, f"requested in chat: {question[:300]}")
    decision = session.last("guard_decision")
    text = f"Proposed {action.id}: {tool}({json.dumps(args)}). The guard decided {action.guard.decision}: {action.guard.reason}{_cite(decision.seq if decision else None)}."
    if action.status == "awaiting_approval":
        text += f" It waits for a human: soctriage approve {session.case.id} {action.id} --by NAME."
    return text


def _action_args(tool: str, question: str, alert: Alert) -> dict[str, Any] | None:
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


def give_feedback(
    deps: Deps, case_id: str, *, by: str, disposition: str, reason_code: str | None, note: str | None
) -> LedgerEntry:
    """Record an analyst's final disposition (`feedback` entry) and re-index the case at once, so similar
    cases show the analyst's word rather than the model's from now on."""
    case = deps.store.get_case(case_id)
    if case is None or not case.alert_ids:
        raise AssistantError(f"case {case_id} does not exist")
    payload = {"disposition": disposition, "reason_code": reason_code, "note": note}
    entry = deps.record(case_id, f"human:{by}", "feedback", payload)
    alert = deps.store.get_alert(case.alert_ids[0])
    if alert is not None:
        open_index(deps.settings).index_cases([case_document(case, alert, payload)])
    return entry
