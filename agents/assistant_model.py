"""The case assistant's model responder: an OpenAI-compatible model answers from the case's ledger digest with
read-tier tools and a tool to propose response actions, streamed token by token; every model call, lookup and
proposal is written to the ledger like the graph's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from soctriage.agents.assistant_actions import ACTOR
from soctriage.agents.assistant_facts import describe
from soctriage.agents.assistant_session import ChatSession
from soctriage.agents.llm import ChatClient
from soctriage.agents.llm_result import LLMResult
from soctriage.agents.prompting import fence, load_prompt
from soctriage.service.domain import LedgerEntry
from soctriage.service.ledger_events import ChatMessage, events_of
from soctriage.tools.actions import proposable_actions

MAX_TOOL_ROUNDS = 4
HISTORY_TURNS = 6
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


async def model_answer(
    client: ChatClient, label: str, session: ChatSession, question: str, question_seq: int
) -> AsyncIterator[str]:
    """The model's answer, streamed: the case's ledger digest as context, the chat so far, and up to
    MAX_TOOL_ROUNDS rounds of read-tier lookups and proposals, each written to the ledger."""
    prompt = load_prompt("assistant")
    digest = "\n".join(describe(e) for e in session.entries if e.seq < question_seq and e.kind != "llm_call")
    system = prompt.render(
        case_id=session.case.id,
        tenant=session.case.tenant,
        status=session.case.status,
        ledger=fence("ledger", digest),
    )
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    messages += _history(session.entries, question_seq)
    messages.append({"role": "user", "content": question})
    tools = [*session.deps.registry.openai_tools(session.deps.registry.names("read")), PROPOSE_TOOL]
    for _ in range(MAX_TOOL_ROUNDS):
        result: LLMResult | None = None
        async for event in client.stream(messages, tools=tools, prompt_hashes={prompt.name: prompt.sha256}):
            if isinstance(event, str):
                yield event
            else:
                result = event
        assert result is not None
        session.deps.record(session.case.id, ACTOR, "llm_call", result.ledger_event(label))
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
    seq, result = await session.lookup(call.name, call.arguments)
    return fence("tool-result", {"seq": seq, **result.as_payload()})


def _history(entries: list[LedgerEntry], before: int) -> list[dict[str, Any]]:
    turns = events_of((e for e in entries if e.seq < before), ChatMessage)
    return [{"role": turn.role, "content": turn.text} for turn in turns[-2 * HISTORY_TURNS :]]
