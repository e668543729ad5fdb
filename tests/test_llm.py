"""The model client, driven through the real `openai` client against the scripted fake server."""

from __future__ import annotations

import json
import time
from typing import Literal

import httpx2
import pytest
from fakes import FAKE_API_KEY, ScriptedOpenAI, error, make_client, reply, tool_call_reply
from pydantic import BaseModel, Field
from soctriage.agents.llm import ChatClient
from soctriage.agents.llm_result import ModelOutputError, ModelUnavailableError
from soctriage.service.config import Settings

MESSAGES = [
    {"role": "system", "content": "You triage EDR alerts."},
    {"role": "user", "content": "<alert>powershell -enc ...</alert>"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_hash",
            "description": "threat intel for a file hash",
            "parameters": {
                "type": "object",
                "properties": {"sha256": {"type": "string"}},
                "required": ["sha256"],
                "additionalProperties": False,
            },
        },
    }
]


class Hypothesis(BaseModel):
    technique_id: str
    reason: str


class Triage(BaseModel):
    category: Literal["malware", "credential_access", "benign"]
    confidence: float = Field(ge=0, le=1)
    hypotheses: list[Hypothesis]
    note: str | None = None


GOOD = Triage(
    category="malware", confidence=0.8, hypotheses=[Hypothesis(technique_id="T1059.001", reason="encoded")]
)


async def test_structured_output_is_requested_strict_and_parsed() -> None:
    with ScriptedOpenAI([reply(GOOD)]) as fake:
        result = await make_client(fake).complete(MESSAGES, schema=Triage, prompt_hashes={"triage": "ab12"})

    assert result.parsed == GOOD
    assert result.content == GOOD.model_dump_json()
    sent = fake.requests[0]
    assert sent.messages == MESSAGES
    assert sent.body["model"] == "fake-model"
    response_format = sent.response_format
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Triage"
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"category", "confidence", "hypotheses", "note"}
    assert result.prompt_hashes == {"triage": "ab12"}
    assert [a.outcome for a in result.attempts] == ["ok"]


async def test_plain_text_answer_without_schema() -> None:
    with ScriptedOpenAI([reply("It is probably benign.")]) as fake:
        result = await make_client(fake).complete(MESSAGES)
    assert result.content == "It is probably benign."
    assert result.parsed is None and result.tool_calls == []
    assert fake.requests[0].response_format is None


async def test_tool_calls_are_returned_parsed() -> None:
    step = tool_call_reply(("lookup_hash", {"sha256": "aa" * 32}), ("lookup_hash", {"sha256": "bb" * 32}))
    with ScriptedOpenAI([step]) as fake:
        result = await make_client(fake).complete(MESSAGES, tools=TOOLS, tool_choice="required")

    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("lookup_hash", {"sha256": "aa" * 32}),
        ("lookup_hash", {"sha256": "bb" * 32}),
    ]
    assert len({c.id for c in result.tool_calls}) == 2
    assert result.finish_reason == "tool_calls"
    assert fake.requests[0].tools == TOOLS
    assert fake.requests[0].body["tool_choice"] == "required"


async def test_rate_limit_then_success() -> None:
    with ScriptedOpenAI([error(429, retry_after=0), reply(GOOD)]) as fake:
        result = await make_client(fake).complete(MESSAGES, schema=Triage)

    assert result.parsed == GOOD
    assert [(a.outcome, a.status) for a in result.attempts] == [("rate_limited", 429), ("ok", None)]
    assert len(fake.requests) == 2


async def test_retry_after_is_honoured_and_capped() -> None:
    with ScriptedOpenAI([error(429, retry_after=0.2), reply("ok")]) as fake:
        began = time.perf_counter()
        await make_client(fake, backoff_max_s=5).complete(MESSAGES)
        assert time.perf_counter() - began >= 0.2

    with ScriptedOpenAI([error(503, retry_after=3600), reply("ok")]) as fake:
        began = time.perf_counter()
        await make_client(fake, backoff_max_s=0.05).complete(MESSAGES)
        assert time.perf_counter() - began < 1


async def test_server_error_storm_exhausts_attempts() -> None:
    with ScriptedOpenAI([error(500)] * 4) as fake, pytest.raises(ModelUnavailableError) as caught:
        await make_client(fake, max_attempts=4).complete(MESSAGES, schema=Triage)

    exc = caught.value
    assert exc.attempt_count == 4
    assert isinstance(exc.last_error, Exception)
    assert [(a.outcome, a.status) for a in exc.result.attempts] == [("server_error", 500)] * 4
    assert "failed 4 time(s)" in str(exc)
    assert exc.result.parsed is None and exc.result.error


async def test_timeout_is_retried() -> None:
    with ScriptedOpenAI([reply("late", delay_s=2), reply("on time")]) as fake:
        result = await make_client(fake, timeout_s=0.1).complete(MESSAGES)
    assert result.content == "on time"
    assert [a.outcome for a in result.attempts] == ["timeout", "ok"]


async def test_connection_error_is_retried_then_unavailable() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    client = ChatClient(
        "m",
        "http://down.test/v1",
        None,
        "down.test",
        max_attempts=2,
        backoff_base_s=0.001,
        backoff_max_s=0.01,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(refuse)),
    )
    with pytest.raises(ModelUnavailableError) as caught:
        await client.complete(MESSAGES)
    assert caught.value.attempt_count == 2
    assert [a.outcome for a in caught.value.result.attempts] == ["connection_error"] * 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_not_retried(status: int) -> None:
    fake = ScriptedOpenAI([error(status, "bad request: context too long")])
    with fake, pytest.raises(ModelUnavailableError) as caught:
        await make_client(fake, max_attempts=5).complete(MESSAGES)
    assert caught.value.attempt_count == 1
    assert "rejected the request" in str(caught.value)
    assert [(a.outcome, a.status) for a in caught.value.result.attempts] == [("rejected", status)]


async def test_malformed_json_gets_one_corrective_retry() -> None:
    with ScriptedOpenAI([reply('{"category": "malware", '), reply(GOOD)]) as fake:
        result = await make_client(fake).complete(MESSAGES, schema=Triage)

    assert result.parsed == GOOD
    assert [a.outcome for a in result.attempts] == ["malformed", "ok"]
    retry = fake.requests[1].messages
    assert retry[:2] == MESSAGES
    assert retry[2] == {"role": "assistant", "content": '{"category": "malware", '}
    assert retry[3]["role"] == "user" and "Invalid JSON" in retry[3]["content"]
    assert result.messages == retry


async def test_twice_invalid_answer_raises_model_output_error() -> None:
    wrong = {"category": "malware", "confidence": 7, "hypotheses": [], "note": None}
    fake = ScriptedOpenAI([reply("not json at all"), reply(wrong)])
    with fake, pytest.raises(ModelOutputError) as caught:
        await make_client(fake).complete(MESSAGES, schema=Triage)

    assert "confidence" in str(caught.value)
    assert "Invalid JSON" in fake.requests[1].messages[-1]["content"]
    result = caught.value.result
    assert [a.outcome for a in result.attempts] == ["malformed", "malformed"]
    assert result.content == json.dumps(wrong)
    assert result.total_tokens == 30


@pytest.mark.parametrize(
    ("call", "complaint"),
    [(("lookup_hash", '{"sha256": "aa'), "not valid JSON"), (("rm_rf", {}), "does not exist")],
)
async def test_malformed_tool_call_gets_one_corrective_retry(
    call: tuple[str, str | dict[str, str]], complaint: str
) -> None:
    good = tool_call_reply(("lookup_hash", {"sha256": "aa"}))
    with ScriptedOpenAI([tool_call_reply(call), good]) as fake:
        result = await make_client(fake).complete(MESSAGES, tools=TOOLS)

    assert [(c.name, c.arguments) for c in result.tool_calls] == [("lookup_hash", {"sha256": "aa"})]
    correction = fake.requests[1].messages[-1]
    assert correction["role"] == "user" and complaint in correction["content"]
    assert fake.requests[1].messages[-2]["role"] == "assistant"


async def test_token_and_latency_accounting() -> None:
    steps = [
        error(429, retry_after=0),
        reply("{oops", prompt_tokens=100, completion_tokens=7),
        reply(GOOD, prompt_tokens=130, completion_tokens=40, delay_s=0.05),
    ]
    with ScriptedOpenAI(steps) as fake:
        result = await make_client(fake).complete(MESSAGES, schema=Triage)

    assert (result.prompt_tokens, result.completion_tokens, result.total_tokens) == (230, 47, 277)
    assert [(a.call, a.outcome) for a in result.attempts] == [
        (1, "rate_limited"),
        (1, "malformed"),
        (2, "ok"),
    ]
    assert result.attempts[-1].latency_ms >= 50
    assert result.latency_ms >= sum(a.latency_ms for a in result.attempts)
    assert result.served_model == "fake-model"


async def test_ledger_payload_is_json_and_never_holds_the_key() -> None:
    with ScriptedOpenAI([reply(GOOD)]) as fake:
        result = await make_client(fake).complete(MESSAGES, schema=Triage, prompt_hashes={"p": "h"})
    assert fake.requests[0].headers["authorization"] == f"Bearer {FAKE_API_KEY}"

    payload = result.ledger_event("openai:fake-model").as_payload()
    text = json.dumps(payload)
    assert FAKE_API_KEY not in text
    assert payload["endpoint_name"] == "fake-openai.test"
    assert payload["parsed"] == GOOD.model_dump(mode="json")
    assert payload["messages"] == MESSAGES
    assert payload["prompt_hashes"] == {"p": "h"}

    # A server that echoes the rejected key must not get it into the ledger either.
    fake = ScriptedOpenAI([error(401, f"Incorrect API key provided: {FAKE_API_KEY}")])
    with fake, pytest.raises(ModelUnavailableError) as caught:
        await make_client(fake).complete(MESSAGES)
    assert FAKE_API_KEY not in json.dumps(caught.value.result.ledger_event("openai:fake-model").as_payload())
    assert "[redacted]" in caught.value.result.attempts[0].error


def test_from_settings_reads_openai_env_and_keeps_credentials_out_of_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOCTRIAGE_MODEL", "openai:gpt-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:pw@llm.internal:8080/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key")
    monkeypatch.setenv("SOCTRIAGE_LLM_MAX_ATTEMPTS", "2")
    settings = Settings()
    assert "sk-env-key" not in repr(settings)

    client = ChatClient.from_settings(settings)
    assert (client.model, client.endpoint_name, client.max_attempts) == ("gpt-test", "llm.internal:8080", 2)

    with pytest.raises(ValueError, match="openai:<model>"):
        ChatClient.from_settings(Settings(model="builtin"))


async def test_fake_fails_when_called_more_than_scripted() -> None:
    fake = ScriptedOpenAI([reply("one")])
    client = make_client(fake, max_attempts=1)
    await client.complete(MESSAGES)
    with pytest.raises(ModelUnavailableError, match="only 1 steps were scripted"):
        await client.complete(MESSAGES)
    assert fake.violations == ["called 2 times but only 1 steps were scripted"]
    with pytest.raises(AssertionError, match="only 1 steps were scripted"):
        fake.assert_done()


async def test_fake_fails_when_called_fewer_times_than_scripted() -> None:
    fake = ScriptedOpenAI([reply("one"), reply("two")])
    with pytest.raises(AssertionError, match="2 steps were scripted but only 1 were called"), fake:
        await make_client(fake).complete(MESSAGES)
