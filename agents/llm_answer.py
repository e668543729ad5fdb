"""Reading a model's answer: the schema-validated object or the tool calls it asked for, and, when the answer
is malformed, the corrective re-ask that shows the model what it said and why it could not be used."""

from __future__ import annotations

import functools
import json
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessage
from pydantic import BaseModel, ValidationError
from soctriage.agents.llm_result import MAX_ERROR_CHARS, ToolCall

_CORRECTION = (
    "Your previous answer could not be used: {error}. Answer again, following the required format exactly."
)


class Malformed(Exception):
    """The answer is not in the required shape; the message says why, for the re-ask."""


@functools.cache
def strict_json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the form strict structured outputs accept (all fields required,
    no additional properties); the `openai` package's own converter does exactly this for tools."""
    return openai.pydantic_function_tool(schema)["function"]["parameters"]


def read_answer(
    message: ChatCompletionMessage | None, schema: type[BaseModel] | None, offered: set[str] | None
) -> tuple[BaseModel | None, list[ToolCall]]:
    if message is None:
        raise Malformed("the response had no choices")
    if message.refusal:
        raise Malformed(f"the model refused: {message.refusal}")
    if message.tool_calls:
        if offered is None:
            raise Malformed("tools were called but none were offered")
        return None, [_read_tool_call(call, offered) for call in message.tool_calls]
    if schema is None:
        return None, []
    if not message.content:
        raise Malformed("the answer was empty; a JSON object matching the schema was required")
    try:
        return schema.model_validate_json(message.content), []
    except ValidationError as exc:
        raise Malformed(_describe(exc)) from None


def _read_tool_call(call: Any, offered: set[str]) -> ToolCall:
    if call.type != "function":
        raise Malformed(f"tool call {call.id} is of unsupported type {call.type!r}")
    name = call.function.name
    if name not in offered:
        raise Malformed(f"tool {name!r} does not exist; offered tools are {sorted(offered)}")
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise Malformed(f"the arguments of tool call {name!r} are not valid JSON ({exc})") from None
    if not isinstance(arguments, dict):
        raise Malformed(f"the arguments of tool call {name!r} must be a JSON object")
    return ToolCall(id=call.id, name=name, arguments=arguments)


def _describe(exc: ValidationError) -> str:
    # Field paths and messages only: echoing input values back could replay untrusted alert text.
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return "; ".join(parts)[:MAX_ERROR_CHARS]


def echo(message: ChatCompletionMessage | None) -> list[dict[str, Any]]:
    """The rejected answer as a plain assistant turn, so the re-ask shows the model what it said. Tool calls
    are rendered as text: a real `tool_calls` turn would demand tool results before the next user turn."""
    if message is None:
        return []
    if message.tool_calls:
        said = json.dumps([call.model_dump(mode="json", exclude={"id"}) for call in message.tool_calls])
    else:
        said = message.content or message.refusal or ""
    return [{"role": "assistant", "content": said}]


def correction(error: str) -> dict[str, Any]:
    return {"role": "user", "content": _CORRECTION.format(error=error)}
