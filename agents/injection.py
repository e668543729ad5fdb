"""Detect instructions aimed at the model inside alert data (prompt injection).

Alert text is attacker-controlled. The fence in prompting.py keeps it from being read as instructions; this
detector additionally flags the case, so that a manipulated alert is never auto-closed whatever any model says.
Obfuscation seen in the wild is undone first: cmd carets, PowerShell backticks and string concatenation,
zero-width characters, full-width letters, URL and base64 (incl. PowerShell's UTF-16LE -EncodedCommand), JSON
unicode escapes (the raw record is JSON text) and words joined by underscores (file and account names).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from urllib.parse import unquote

from soctriage.service.domain import Alert

INSTRUCTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        (
            "override",
            r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instruction|prompt|rule|guideline)s?\b",
        ),
        (
            "reclassify",
            r"\b(mark|classify|label|treat|report|flag)\b.{0,30}\b(benign|false.?positive|safe|clean)\b",
        ),
        ("suppress", r"\b(do not|don't|never)\b.{0,20}\b(escalate|alert|report|isolate|investigate)\b"),
        ("role", r"\b(you are now|act as|new instructions|system prompt|as an ai)\b"),
        ("fence", r"</?\s*untrusted[-_ ]data|<\|im_(start|end)\|>|\[/?inst\]"),
    )
)

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
CONCAT = re.compile(r"""['"]\s*\+\s*['"]""")
JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unobfuscate(text: str) -> str:
    text = JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = unicodedata.normalize("NFKC", text).translate(ZERO_WIDTH)
    text = CONCAT.sub("", text).replace("^", "").replace("`", "").replace("_", " ")
    return re.sub(r"\s+", " ", unquote(text)).lower()


def _decoded_runs(text: str) -> list[str]:
    """Base64 payloads hidden in the text, decoded as UTF-16LE (PowerShell) or UTF-8."""
    decoded = []
    for run in BASE64_RUN.findall(text):
        try:
            data = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        for encoding in ("utf-16-le", "utf-8"):
            try:
                candidate = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            if candidate.isprintable() or sum(c.isprintable() for c in candidate) > 0.9 * len(candidate):
                decoded.append(candidate)
                break
    return decoded


def find_injection(text: str) -> list[str]:
    """Names of the instruction patterns found in `text`, after undoing common obfuscation."""
    views = [_unobfuscate(text), *(_unobfuscate(d) for d in _decoded_runs(text))]
    return sorted({name for name, pattern in INSTRUCTION_PATTERNS for view in views if pattern.search(view)})


def scan_alert(alert: Alert) -> tuple[str, ...]:
    """Injection markers anywhere in the alert, including fields we did not map (they reach the model too)."""
    return tuple(find_injection(alert.raw))
