"""A scripted OpenAI-compatible server (ASGI) for tests: it answers each request with the next scripted step.

It fails the test when called more often than scripted (the extra request gets a 500 naming the problem and is
recorded as a violation) and `assert_done()` fails when fewer calls were made or any violation occurred.
Use it as a context manager so that check always runs:

    with ScriptedOpenAI([reply('{"ok": true}')]) as fake:
        result = await make_client(fake).complete(messages, schema=Answer)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx2
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from soctriage.agents.llm import ChatClient

FAKE_API_KEY = "sk-fake-secret-0123456789"


@dataclass(frozen=True)
class Reply:
    """A 200 chat completion: text content and/or tool calls, with usage tokens."""

    content: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    refusal: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 10
    completion_tokens: int = 5
    delay_s: float = 0.0

    def chunks(self, model: str, number: int, include_usage: bool) -> list[dict[str, Any]]:
        """The same answer as `stream: true` sends it: content in small deltas, each tool call as one delta,
        a last chunk with the finish reason, and a usage chunk when the request asked for one."""
        base = {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {**base, "model": model, "choices": [choice]}

        out = [chunk({"role": "assistant", "content": ""})]
        text = self.content or ""
        out += [chunk({"content": piece}) for piece in re.findall(r"\S+\s*|\s+", text)]
        for index, call in enumerate(self.tool_calls):
            out.append(chunk({"tool_calls": [{"index": index, **call}]}))
        out.append(chunk({}, self.finish_reason))
        if include_usage:
            usage = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            }
            out.append({**base, "model": model, "choices": [], "usage": usage})
        return out

    def completion(self, model: str, number: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content, "refusal": self.refusal}
        if self.tool_calls:
            message["tool_calls"] = list(self.tool_calls)
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": self.finish_reason, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
        }


@dataclass(frozen=True)
class HttpError:
    """An HTTP error response, e.g. 429 with Retry-After, 500, 400."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Step = Reply | HttpError


def reply(
    content: str | BaseModel | dict[str, Any],
    *,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    finish_reason: str = "stop",
    delay_s: float = 0.0,
) -> Reply:
    """A text answer; a pydantic model or dict is sent as its JSON (a structured-output answer)."""
    if isinstance(content, BaseModel):
        content = content.model_dump_json()
    elif isinstance(content, dict):
        content = json.dumps(content)
    return Reply(
        content=content,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason,
        delay_s=delay_s,
    )


def tool_call_reply(
    *calls: tuple[str, dict[str, Any] | str],
    content: str | None = None,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    delay_s: float = 0.0,
) -> Reply:
    """An answer calling tools: each call is (name, arguments); string arguments are sent verbatim, so a
    test can script malformed JSON."""
    rendered = tuple(
        {
            "id": f"call_{i}_{name}",
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for i, (name, args) in enumerate(calls, start=1)
    )
    return Reply(
        content=content,
        tool_calls=rendered,
        finish_reason="tool_calls",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        delay_s=delay_s,
    )


def error(
    status: int,
    message: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    retry_after: float | None = None,
    delay_s: float = 0.0,
) -> HttpError:
    """An HTTP error with an OpenAI-shaped body; `retry_after` sets the Retry-After header (seconds)."""
    headers = dict(headers or {})
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    body = {"error": {"message": message or f"scripted error {status}", "type": "scripted", "code": None}}
    return HttpError(status=status, body=body, headers=headers, delay_s=delay_s)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return self.body.get("tools")

    @property
    def response_format(self) -> dict[str, Any] | None:
        return self.body.get("response_format")


class ScriptedOpenAI:
    """The fake server. It is itself an ASGI app; `requests` holds every request received, in order."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = list(steps)
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self._app = FastAPI()
        self._app.add_api_route("/v1/chat/completions", self._chat_completions, methods=["POST"])
        self._app.add_api_route("/{path:path}", self._unexpected, methods=["GET", "POST", "PUT", "DELETE"])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    def assert_done(self) -> None:
        problems = list(self.violations)
        if len(self.requests) < len(self.steps):
            problems.append(
                f"{len(self.steps)} steps were scripted but only {len(self.requests)} were called"
            )
        assert not problems, "ScriptedOpenAI: " + "; ".join(problems)

    def __enter__(self) -> ScriptedOpenAI:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.assert_done()

    async def _chat_completions(self, request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError as exc:
            return self._violation(400, f"request body is not JSON: {exc}")
        self.requests.append(RecordedRequest(request.method, request.url.path, dict(request.headers), body))
        number = len(self.requests)
        if number > len(self.steps):
            return self._violation(
                500, f"called {number} times but only {len(self.steps)} steps were scripted"
            )
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return self._violation(400, "request lacks `model` or a `messages` list")
        step = self.steps[number - 1]
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        if isinstance(step, HttpError):
            return JSONResponse(step.body, status_code=step.status, headers=step.headers)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = step.chunks(body["model"], number, include_usage)
            return StreamingResponse(_sse(chunks), media_type="text/event-stream")
        return JSONResponse(step.completion(body["model"], number))

    async def _unexpected(self, request: Request) -> JSONResponse:
        return self._violation(404, f"unexpected {request.method} {request.url.path}")

    def _violation(self, status: int, message: str) -> JSONResponse:
        self.violations.append(message)
        return JSONResponse(
            {"error": {"message": f"ScriptedOpenAI: {message}", "type": "fake_violation", "code": None}},
            status_code=status,
        )


async def _sse(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def make_client(fake: ScriptedOpenAI, **overrides: Any) -> ChatClient:
    """A ChatClient talking to `fake` in-process, with backoff tiny enough for tests."""
    settings: dict[str, Any] = {
        "model": "fake-model",
        "base_url": "http://fake-openai.test/v1",
        "api_key": FAKE_API_KEY,
        "endpoint_name": "fake-openai.test",
        "timeout_s": 5.0,
        "max_attempts": 3,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
    }
    settings.update(overrides)
    http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake))
    return ChatClient(**settings, http_client=http_client)
