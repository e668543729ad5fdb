"""Prompt files and the one helper that fences untrusted data into them.

Prompts are versioned by the sha256 of their file content; the ledger records that hash with every model call,
so a transcript names exactly which wording produced a decision.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict


class Prompt(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    text: str
    sha256: str

    def render(self, **values: str) -> str:
        return self.text.format(**values)


@cache
def load_prompt(name: str) -> Prompt:
    text = resources.files("soctriage.prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")
    return Prompt(name=name, text=text, sha256=hashlib.sha256(text.encode()).hexdigest())


FENCE_OPEN = "<untrusted-data"
FENCE_CLOSE = "</untrusted-data"


def fence(label: str, data: Any) -> str:
    """Wrap alert or tool data in a delimited block the model is told never to obey.

    The marker carries a nonce derived from the content, so text inside cannot forge a matching closing
    marker; any marker-like text inside is defanged as well.
    """
    body = data if isinstance(data, str) else json.dumps(data, indent=1, ensure_ascii=False, default=str)
    body = body.replace(FENCE_OPEN, "<untrusted_data").replace(FENCE_CLOSE, "</untrusted_data")
    nonce = hashlib.sha256(body.encode()).hexdigest()[:12]
    return f'{FENCE_OPEN} label="{label}" id="{nonce}">\n{body}\n{FENCE_CLOSE} id="{nonce}">'
