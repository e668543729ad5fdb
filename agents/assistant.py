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
from soctriage.agents.assistant_actions import ACTOR
from soctriage.agents.assistant_builtin import builtin_answer
from soctriage.agents.assistant_facts import describe
from soctriage.agents.assistant_session import ChatSession
from soctriage.agents.deps import Deps
from soctriage.agents.llm import ChatClient
from soctriage.agents.llm_result import LLMError, LLMResult
from soctriage.agents.prompting import fence, load_prompt
from soctriage.agents.state import PlannedAction
from soctriage.service.domain import LedgerEntry
from soctriage.tools.actions import proposable_actions

MAX_QUESTION_CHARS = 4000
MAX_TOOL_ROUNDS = 4
HISTORY_TURNS = 6
_CITE = re.compile(r"\[seq\s*([\d,\s]+)\]", re.I)
PROPOSE_TOOL = {
    "type": "function",
    "function": {
        "name": "propose_action",
        "description": f"Propose a response action for this case ({', '.join(proposable_actions())}). The policy"
        " guard decides and a human approves; nothing runs until then.",
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
        alert = self.deps.store.get_alert(case.alert_ids[0], case.tenant)
        if alert is None:
            raise AssistantError(f"case {case_id}: its alert is not stored")
        asked = self.deps.record(case_id, f"human:{by}", "chat_message", {"role": "user", "text": question})
        session = ChatSession(self.deps, case, alert)
        parts: list[str] = []
        model = self.name
        if self.client is None:
            text = await builtin_answer(session, question, asked.seq)
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
                text = fallback + await builtin_answer(session, question, asked.seq)
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

    async def _model_answer(
        self, session: ChatSession, question: str, question_seq: int
    ) -> AsyncIterator[str]:
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


async def _run_call(session: ChatSession, call: Any) -> str:
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
