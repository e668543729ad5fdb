"""The case assistant: analysts chat with one case, and every answer rests on, and cites, its ledger.

Each question and each answer is a `chat_message` ledger entry (actor `human:<name>`, then `assistant`).
Lookups the assistant makes (similar past cases, the knowledge base, threat intel, ...) are read-tier tool
calls written to the ledger like the graph's, so an answer can cite them. A proposed action goes through the
guard and waits for a human (agents/assistant_actions.py); the assistant never acts.

Two responders: the rule responder (agents/assistant_builtin.py) answers deterministically from the ledger
(summary, timeline, evidence, actions, why the case is in its status, entities, what was decided on similar
past cases, runbooks), and the model responder (agents/assistant_model.py) answers with read-only tools,
streamed token by token. Analysts' feedback on a case is agents/feedback.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from soctriage.agents.assistant_actions import ACTOR
from soctriage.agents.assistant_builtin import builtin_answer
from soctriage.agents.assistant_model import model_answer
from soctriage.agents.assistant_session import ChatSession
from soctriage.agents.deps import Deps
from soctriage.agents.llm import ChatClient
from soctriage.agents.llm_result import LLMError
from soctriage.agents.state import PlannedAction
from soctriage.service.ledger_events import ChatMessage

MAX_QUESTION_CHARS = 4000
_CITE = re.compile(r"\[seq\s*([\d,\s]+)\]", re.I)


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
        asked = self.deps.record(
            case_id, f"human:{by}", "chat_message", ChatMessage(role="user", text=question)
        )
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
                async for piece in model_answer(self.client, self.name, session, question, asked.seq):
                    parts.append(piece)
                    yield piece
            except LLMError as exc:
                session.deps.record(case_id, ACTOR, "llm_call", exc.result.ledger_event(self.name))
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
        answered = self.deps.record(case_id, ACTOR, "chat_message", ChatMessage.model_validate(payload))
        yield ChatAnswer(
            case_id=case_id,
            question_seq=asked.seq,
            answer_seq=answered.seq,
            answer=text,
            citations=valid,
            proposals=tuple(session.proposed),
            model=model,
        )
