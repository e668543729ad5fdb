"""The OpenAI-compatible model client: one Chat Completions call with retries, validation and accounting.

This is the only retry layer between the agents and a model endpoint: the `openai` client's own retries are
off, tenacity retries transient failures here, and a malformed answer gets one corrective re-ask. Every call
yields an `LLMResult` (or an `LLMError` carrying one) holding what an `llm_call` ledger entry records.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel
from soctriage.agents.llm_answer import Malformed, correction, echo, read_answer, strict_json_schema
from soctriage.agents.llm_result import (
    MAX_ERROR_CHARS,
    Attempt,
    LLMResult,
    ModelOutputError,
    ModelUnavailableError,
    Outcome,
    ToolCall,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

if TYPE_CHECKING:
    import httpx2
    from soctriage.service.config import Settings


class ChatClient:
    """Chat Completions against one OpenAI-compatible endpoint."""

    def __init__(
        self,
        model: str,
        base_url: str | None,
        api_key: str | None,
        endpoint_name: str,
        *,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.model = model
        self.endpoint_name = endpoint_name
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_max_s = backoff_max_s
        self._backoff = wait_random_exponential(multiplier=backoff_base_s, max=backoff_max_s)
        self._api_key = api_key
        self._openai = openai.AsyncOpenAI(
            # Local servers (Ollama, vLLM, llama.cpp) take no key, but the client insists on one.
            api_key=api_key or "unused",
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
            http_client=http_client,
        )

    @classmethod
    def from_settings(cls, settings: Settings, http_client: httpx2.AsyncClient | None = None) -> ChatClient:
        """The client for `SOCTRIAGE_MODEL=openai:<model>`."""
        prefix, _, model = settings.model.partition(":")
        if prefix != "openai" or not model:
            raise ValueError(
                f"SOCTRIAGE_MODEL={settings.model!r} does not name an OpenAI model (openai:<model>)"
            )
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls(
            model,
            settings.openai_base_url,
            key,
            endpoint_name(settings.openai_base_url),
            timeout_s=settings.llm_timeout_s,
            max_attempts=settings.llm_max_attempts,
            backoff_base_s=settings.llm_backoff_base_s,
            backoff_max_s=settings.llm_backoff_max_s,
            http_client=http_client,
        )

    async def aclose(self) -> None:
        await self._openai.close()

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: type[BaseModel] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        prompt_hashes: dict[str, str] | None = None,
    ) -> LLMResult:
        """Ask the model once (plus retries). With `schema`, `parsed` is the validated answer; with `tools`,
        `tool_calls` holds the calls the model made (or none, when it answered in text instead)."""
        call = _Call(self, list(messages), prompt_hashes or {})
        request: dict[str, Any] = {}
        if schema is not None:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema.__name__,
                    "schema": strict_json_schema(schema),
                    "strict": True,
                },
            }
        if tools:
            request["tools"] = tools
            if tool_choice is not None:
                request["tool_choice"] = tool_choice
        offered = {t["function"]["name"] for t in tools or [] if t.get("type") == "function"}

        turn = 1
        while True:
            completion, latency_ms = await call.send(turn, request)
            message = completion.choices[0].message if completion.choices else None
            try:
                parsed, tool_calls = read_answer(message, schema, offered if tools else None)
            except Malformed as exc:
                error = str(exc)
                call.attempts.append(
                    Attempt(call=turn, outcome="malformed", error=error, latency_ms=latency_ms)
                )
                if turn == 2:
                    raise ModelOutputError(
                        f"{self.endpoint_name}: the model's answer was malformed twice: {error}",
                        call.result(completion, error=error),
                    ) from None
                call.messages = [*call.messages, *echo(message), correction(error)]
                turn = 2
                continue
            call.attempts.append(Attempt(call=turn, outcome="ok", latency_ms=latency_ms))
            return call.result(completion, parsed=parsed, tool_calls=tool_calls)

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        prompt_hashes: dict[str, str] | None = None,
    ) -> AsyncIterator[str | LLMResult]:
        """Ask with `stream: true`: yields each text delta as it arrives, then the `LLMResult` (holding any tool
        calls). Transient failures are retried until the stream opens; a stream cut after that, or a malformed
        tool call, raises (there is no corrective re-ask: the text was already shown)."""
        import httpx2
        from openai.lib.streaming.chat import ChatCompletionStreamState

        call = _Call(self, list(messages), prompt_hashes or {})
        request: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
        if tools:
            request["tools"] = tools
        offered = {t["function"]["name"] for t in tools or [] if t.get("type") == "function"}
        began = time.perf_counter()
        chunks, _ = await call.send(1, request)
        state = ChatCompletionStreamState()
        try:
            async with asyncio.timeout(self.timeout_s):
                async for chunk in chunks:  # type: ignore[attr-defined]
                    state.handle_chunk(chunk)
                    delta = chunk.choices[0].delta.content if chunk.choices else None
                    if delta:
                        yield delta
        except (openai.APIError, TimeoutError, httpx2.HTTPError) as exc:
            call.attempts.append(call._failed(1, exc, _ms_since(began)))
            last = call.attempts[-1]
            message = f"model endpoint {self.endpoint_name}: the stream broke off: {last.error}"
            raise ModelUnavailableError(message, call.result(None, error=last.error), exc, 1) from exc
        completion = state.current_completion_snapshot
        call._count(completion)  # type: ignore[arg-type]
        answer = completion.choices[0].message if completion.choices else None
        try:
            _, tool_calls = read_answer(answer, None, offered if tools else None)  # type: ignore[arg-type]
        except Malformed as exc:
            error = str(exc)
            call.attempts.append(
                Attempt(call=1, outcome="malformed", error=error, latency_ms=_ms_since(began))
            )
            raise ModelOutputError(
                f"{self.endpoint_name}: malformed streamed answer: {error}",
                call.result(completion, error=error),  # type: ignore[arg-type]
            ) from None
        call.attempts.append(Attempt(call=1, outcome="ok", latency_ms=_ms_since(began)))
        yield call.result(completion, tool_calls=tool_calls)  # type: ignore[arg-type]

    def _redact(self, text: str) -> str:
        # Some servers echo the key they rejected; the ledger must never carry it.
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def _wait(self, state: RetryCallState) -> float:
        hinted = _retry_after_s(state.outcome.exception() if state.outcome else None)
        return min(hinted, self.backoff_max_s) if hinted is not None else self._backoff(state)


class _Call:
    """The running record of one `complete()`: messages sent so far, attempts, token totals."""

    def __init__(self, client: ChatClient, messages: list[dict[str, Any]], prompt_hashes: dict[str, str]):
        self.client = client
        self.messages = messages
        self.prompt_hashes = prompt_hashes
        self.attempts: list[Attempt] = []
        self.prompt_tokens = self.completion_tokens = self.total_tokens = 0
        self.started = time.perf_counter()

    async def send(self, turn: int, request: dict[str, Any]) -> tuple[ChatCompletion, float]:
        """One request, retried on transient failures; every attempt is recorded."""
        client = self.client
        retrying = AsyncRetrying(
            stop=stop_after_attempt(client.max_attempts),
            wait=client._wait,
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        try:
            return await retrying(self._attempt, turn, request)
        except (openai.APIError, TimeoutError) as exc:
            last = self.attempts[-1]
            tries = sum(1 for a in self.attempts if a.call == turn)
            what = f"failed {tries} time(s)" if _is_transient(exc) else "rejected the request"
            message = f"model endpoint {client.endpoint_name} {what}; last error: {last.error}"
            raise ModelUnavailableError(message, self.result(None, error=last.error), exc, tries) from exc

    async def _attempt(self, turn: int, request: dict[str, Any]) -> tuple[ChatCompletion, float]:
        client = self.client
        began = time.perf_counter()
        try:
            # The HTTP timeout applies per read; this deadline bounds the whole attempt.
            async with asyncio.timeout(client.timeout_s):
                # The client's generic `post`, not `chat.completions.create`: `create` first walks the whole
                # body (messages, JSON schema) against its TypedDict params, which was about half of the
                # client's CPU per call; the body here is plain JSON already, built by this module.
                completion = await client._openai.post(
                    "/chat/completions",
                    cast_to=ChatCompletion,
                    body={"model": client.model, "messages": self.messages, **request},
                    stream=bool(request.get("stream")),
                    stream_cls=openai.AsyncStream[ChatCompletionChunk],
                )
        except (openai.APIError, TimeoutError) as exc:
            self.attempts.append(self._failed(turn, exc, _ms_since(began)))
            raise
        self._count(completion)
        return completion, _ms_since(began)

    def _failed(self, turn: int, exc: BaseException, latency_ms: float) -> Attempt:
        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        error = self.client._redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        return Attempt(call=turn, outcome=_outcome(exc), status=status, error=error, latency_ms=latency_ms)

    def _count(self, completion: ChatCompletion) -> None:
        # An opened stream has no usage yet; its totals are counted from the final snapshot.
        if usage := getattr(completion, "usage", None):
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.total_tokens += usage.total_tokens

    def result(
        self,
        completion: ChatCompletion | None,
        *,
        parsed: BaseModel | None = None,
        tool_calls: list[ToolCall] | None = None,
        error: str | None = None,
    ) -> LLMResult:
        choice = completion.choices[0] if completion and completion.choices else None
        return LLMResult(
            model=self.client.model,
            served_model=completion.model if completion else None,
            endpoint_name=self.client.endpoint_name,
            prompt_hashes=self.prompt_hashes,
            messages=self.messages,
            content=choice.message.content if choice else None,
            finish_reason=choice.finish_reason if choice else None,
            parsed=parsed,
            tool_calls=tool_calls or [],
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens,
            latency_ms=_ms_since(self.started),
            attempts=self.attempts,
            error=error,
        )


def endpoint_name(base_url: str | None) -> str:
    """A loggable name for an endpoint: host and port only, so credentials in a URL never leak."""
    if not base_url:
        return "api.openai.com"
    parts = urlsplit(base_url)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or base_url


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError | TimeoutError)


def _outcome(exc: BaseException) -> Outcome:
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return "rate_limited"
        if exc.status_code >= 500:
            return "server_error"
        return "timeout" if exc.status_code == 408 else "rejected"
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error"
    return "bad_response"


def _retry_after_s(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After as seconds or HTTP date, or retry-after-ms)."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _ms_since(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 3)
