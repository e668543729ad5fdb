"""Test doubles shared by the suite."""

from .adversary import AdversarialOpenAI, Victims
from .openai_fake import (
    FAKE_API_KEY,
    HttpError,
    RecordedRequest,
    Reply,
    ScriptedOpenAI,
    error,
    make_client,
    reply,
    tool_call_reply,
)

__all__ = [
    "FAKE_API_KEY",
    "AdversarialOpenAI",
    "HttpError",
    "RecordedRequest",
    "Reply",
    "ScriptedOpenAI",
    "Victims",
    "error",
    "make_client",
    "reply",
    "tool_call_reply",
]
