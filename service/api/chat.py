"""Chat with a case (DESIGN §8): `POST /v1/cases/{id}/chat` streams the assistant's answer as server-sent
events; `POST /v1/chat/completions` is the same assistant behind the OpenAI Chat Completions shape, where
`model: "case:<id>"` picks the case, so the official `openai` client and chat UIs work unchanged; `GET
/v1/models` lists the tenant's recent cases as models. `POST /v1/cases/{id}/feedback` records an analyst's
final disposition.

Asking writes to the case's ledger and may propose actions, so it needs the analyst role; a case of another
tenant is reported exactly like a missing one. The answer is produced by a task of its own: a client that
hangs up mid-stream does not cut the question's ledger record short.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from soctriage.agents.assistant import (
    MAX_QUESTION_CHARS,
    AssistantError,
    CaseAssistant,
    ChatAnswer,
    ChatEvent,
)
from soctriage.agents.feedback import FeedbackError, give_feedback
from soctriage.service.api.deps import cases_of
from soctriage.service.api.security import Analyst, Viewer
from soctriage.service.auth import Principal
from soctriage.service.cases import NotFoundError, RequestBody
from soctriage.service.domain import Case, Disposition

router = APIRouter()

CaseIdPath = Annotated[str, Path(max_length=64, description="case id, e.g. case-0123456789ab")]
_DONE = object()
_RUNNING: set[asyncio.Task[None]] = set()


class ChatRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=1, max_length=MAX_QUESTION_CHARS, description="what to ask about the case"
    )


class FeedbackRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    disposition: Disposition = Field(description="the analyst's final disposition of the case")
    reason_code: str | None = Field(default=None, max_length=100, description="e.g. known_admin_tool")
    note: str | None = Field(default=None, max_length=4000)
    rule: bool = Field(
        default=False,
        description="make a suppression rule from this case now (benign dispositions only); without it, a rule"
        " is made once feedback on SOCTRIAGE_RULE_AFTER_FEEDBACKS cases of one pattern agrees",
    )
    rule_on_host: bool = Field(default=False, description="bind that rule to this case's host")


class RuleChange(BaseModel):
    id: str
    change: Literal["candidate", "activated", "extended", "revoked"]
    status: Literal["candidate", "active", "revoked"]
    source_cases: list[str]


class FeedbackResult(BaseModel):
    case_id: str
    seq: int = Field(description="ledger seq of the feedback entry")
    disposition: Disposition
    rule: RuleChange | None = Field(default=None, description="the suppression rule this feedback touched")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class CompletionRequest(RequestBody):
    """The subset of the Chat Completions request the assistant uses; other fields are accepted and ignored
    (the case's ledger, not the client, holds the conversation)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description='"case:<case id>"')
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


async def _case(request: Request, who: Principal, case_id: str) -> Case:
    case = await asyncio.to_thread(cases_of(request).store.get_case, case_id)
    if case is None or case.tenant != who.tenant:
        raise NotFoundError(f"case {case_id} does not exist")
    return case


def _assistant(request: Request) -> CaseAssistant:
    return cases_of(request).triager.assistant()


def produce(assistant: CaseAssistant, case_id: str, question: str, by: str) -> asyncio.Queue[Any]:
    """Run the assistant in its own task, handing events over a queue (so a hang-up cannot cancel it)."""
    events: asyncio.Queue[Any] = asyncio.Queue()

    async def run() -> None:
        try:
            async for event in assistant.stream(case_id, question, by=by):
                events.put_nowait(event)
        except Exception as exc:  # surfaced to the client as an error event
            events.put_nowait(exc)
        finally:
            events.put_nowait(_DONE)

    task = asyncio.create_task(run())
    _RUNNING.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(_RUNNING.discard)
    return events


async def events(queue: asyncio.Queue[Any]) -> AsyncIterator[ChatEvent | Exception]:
    while (event := await queue.get()) is not _DONE:
        yield event


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@router.post(
    "/v1/cases/{case_id}/chat",
    tags=["chat"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "token events, then the answer"}},
)
async def chat(request: Request, who: Analyst, case_id: CaseIdPath, body: ChatRequest) -> StreamingResponse:
    """Ask the case assistant. Server-sent events: `token` events (`{"text": ...}`) as the answer is
    produced, then one `answer` event with the recorded answer (ledger seqs of question and answer, cited
    seqs, proposed actions), or an `error` event."""
    await _case(request, who, case_id)
    queue = produce(_assistant(request), case_id, body.question, who.name)

    async def stream() -> AsyncIterator[bytes]:
        async for event in events(queue):
            if isinstance(event, str):
                yield sse({"text": event}, "token")
            elif isinstance(event, ChatAnswer):
                yield sse(event.model_dump(mode="json"), "answer")
            else:
                yield sse({"detail": str(event)}, "error")

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/v1/cases/{case_id}/feedback", response_model=FeedbackResult, tags=["cases"])
async def feedback(
    request: Request, who: Analyst, case_id: CaseIdPath, body: FeedbackRequest
) -> FeedbackResult:
    """Record the analyst's final disposition (a `feedback` ledger entry). From now on similar-case retrieval
    reports this disposition for the case, marked as analyst-confirmed; benign feedback also teaches the
    alert's pattern to the tenant's suppression rules (`rule` asks for a rule at once)."""
    await _case(request, who, case_id)
    deps = cases_of(request).triager.deps
    try:
        outcome = await asyncio.to_thread(
            give_feedback,
            deps,
            case_id,
            by=who.name,
            disposition=body.disposition,
            reason_code=body.reason_code,
            note=body.note,
            rule=body.rule,
            rule_on_host=body.rule_on_host,
        )
    except FeedbackError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    rule, change = outcome.learned.rule, outcome.learned.change
    return FeedbackResult(
        case_id=case_id,
        seq=outcome.entry.seq,
        disposition=body.disposition,
        rule=RuleChange(id=rule.id, change=change, status=rule.status, source_cases=list(rule.source_cases))
        if rule is not None and change is not None
        else None,
    )


def _openai_error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body)


def _question(messages: list[ChatMessage]) -> str | None:
    last = next((m for m in reversed(messages) if m.role == "user"), None)
    if last is None:
        return None
    if isinstance(last.content, list):  # content parts: keep the text ones
        return " ".join(str(p.get("text", "")) for p in last.content if p.get("type") == "text").strip()
    return (last.content or "").strip()


@router.post("/v1/chat/completions", tags=["chat"], response_model=None)
async def chat_completions(request: Request, who: Analyst, body: CompletionRequest) -> Any:
    """OpenAI-compatible Chat Completions: `model` is `case:<case id>`, the last user message is the
    question, `stream` selects server-sent chunks. Answers cite ledger seqs as `[seq N]`."""
    if not body.model.startswith("case:") or not body.model.removeprefix("case:"):
        return _openai_error(400, f'model {body.model!r}: use "case:<case id>"', "model", "model_not_found")
    case_id = body.model.removeprefix("case:")
    question = _question(body.messages)
    if not question:
        return _openai_error(400, "messages: no user message with text", "messages")
    if len(question) > MAX_QUESTION_CHARS:
        return _openai_error(
            400, f"messages: the question is over {MAX_QUESTION_CHARS} characters", "messages"
        )
    try:
        await _case(request, who, case_id)
    except NotFoundError as exc:
        return _openai_error(404, str(exc), "model", "model_not_found")
    queue = produce(_assistant(request), case_id, question, who.name)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if not body.stream:
        parts: list[str] = []
        answer: ChatAnswer | None = None
        async for event in events(queue):
            if isinstance(event, Exception):
                return _openai_error(400 if isinstance(event, AssistantError) else 500, str(event))
            if isinstance(event, ChatAnswer):
                answer = event
            else:
                parts.append(event)
        assert answer is not None
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.answer},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "soctriage": _extension(answer),
        }

    def chunk(delta: dict[str, Any], finish: Literal["stop"] | None = None, **extra: Any) -> bytes:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return sse(data)

    async def stream() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        async for event in events(queue):
            if isinstance(event, str):
                yield chunk({"content": event})
            elif isinstance(event, ChatAnswer):
                yield chunk({}, "stop", soctriage=_extension(event))
            else:
                yield sse(
                    {"error": {"message": str(event), "type": "server_error", "param": None, "code": None}}
                )
        yield b"data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _extension(answer: ChatAnswer) -> dict[str, Any]:
    """What a soctriage-aware client can use; OpenAI clients keep unknown fields and ignore them."""
    return {
        "case_id": answer.case_id,
        "question_seq": answer.question_seq,
        "answer_seq": answer.answer_seq,
        "citations": list(answer.citations),
        "proposals": [
            {"id": a.id, "tool": a.tool, "target": a.target, "status": a.status} for a in answer.proposals
        ],
    }


@router.get("/v1/models", tags=["chat"])
async def models(request: Request, who: Viewer) -> dict[str, Any]:
    """The tenant's 100 newest cases as `case:<id>` models, for chat UIs that list models."""
    cases = await cases_of(request).list(who, None, 100)
    return {
        "object": "list",
        "data": [
            {
                "id": f"case:{c.id}",
                "object": "model",
                "created": int(c.created_at.timestamp()),
                "owned_by": c.tenant,
            }
            for c in cases
        ],
    }
