"""What intake accepts at most: the one home of the limits the CLI and the HTTP API both apply to input.

Each limit stops input that would otherwise crash a later step instead of being rejected: Python's JSON parser
recurses (RecursionError near 1,000 levels), `int()` refuses more than 4,300 digits, a `\\ud800` escape decodes
to a lone surrogate that UTF-8 cannot encode (the ledger hash, the database), a `\\u0000` escape to a NUL that
PostgreSQL's text columns refuse, NaN and infinity are not JSON (the ledger refuses them), and the store's
columns have a width.
"""

from __future__ import annotations

import re
from typing import Any

# Alerts nest a few levels; an attacker's record nested deeper gains nothing but a parser crash.
MAX_JSON_DEPTH = 100
# Python's own default limit for int() of a decimal string (sys.int_info.default_max_str_digits).
MAX_INT_DIGITS = 4300
# The widths of alerts.vendor_alert_id, alerts.vendor and alerts.product, and of cases.tenant / api_keys.tenant
# in the store's schema (SQLite ignores them; PostgreSQL refuses a longer value).
MAX_VENDOR_ALERT_ID_CHARS = 512
MAX_SOURCE_NAME_CHARS = 128
MAX_TENANT_CHARS = 128
# A person (a key's name, `--by`) is recorded as the ledger actor human:<name>, and ledger.actor is 128 wide.
MAX_PERSON_CHARS = 128 - len("human:")

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In parsed JSON these can only come from an escape: UTF-8 bytes never decode to a surrogate, and JSON forbids a
# raw NUL inside a string.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")
_LONE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|\\u0000"
)
REPLACEMENT = "\ufffd"
_UNPRINTABLE = re.compile(r"[^\S ]|[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


class LimitError(ValueError):
    """Input over one of the limits above: a reason and, when one field is at fault, its path."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{reason} (field {field})" if field else reason)
        self.reason = reason
        self.field = field


TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"


def parse_int(text: str) -> int:
    """`json.loads(parse_int=…)`: a number's digits are checked before `int()` sees them."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise LimitError(f"a number has {len(text.lstrip('-'))} digits, limit is {MAX_INT_DIGITS}")
    return int(text)


def parse_float(text: str) -> float:
    """`json.loads(parse_float=…)`: a number too large for a float would read back as infinity."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise LimitError(f"a number is out of range ({text[:40]})")
    return value


def parse_constant(name: str) -> float:
    """`json.loads(parse_constant=…)`: Python accepts NaN and Infinity, JSON does not."""
    raise LimitError(f"{name} is not valid JSON")


def surrogate_in(text: str) -> int | None:
    """Index of the first lone surrogate in `text`, or None."""
    found = _SURROGATE.search(text)
    return None if found is None else found.start()


def printable(text: str) -> str:
    """`text` with control characters, line breaks and surrogates escaped as `\\uXXXX`: fit for one line of a
    message, a terminal and any text column."""
    return _UNPRINTABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def clean_parsed(value: Any, text: str) -> Any:
    """`value` (parsed from the JSON alert record `text`) with every lone surrogate and NUL in its strings and
    keys replaced by U+FFFD; LimitError when it nests deeper than MAX_JSON_DEPTH. A record is not refused for
    such characters: an attacker who puts an unpaired UTF-16 surrogate into a file name or command line would
    otherwise keep their alert out of triage. The raw record keeps them, and the injection scan flags the alert
    (`unstorable_escapes`). The text decides whether the walk is needed at all: most records have few brackets
    and no escape."""
    deep = text.count("[") + text.count("{") > MAX_JSON_DEPTH
    if deep or _UNSTORABLE_ESCAPE.search(text):
        return _scrubbed(value, "", 0)
    return value


def unstorable_escapes(text: str) -> bool:
    """Whether the JSON `text` escapes a lone surrogate or a NUL (a surrogate pair is a character, not one)."""
    return _LONE_ESCAPE.search(text) is not None


def _scrubbed(item: Any, path: str, depth: int) -> Any:
    if isinstance(item, str):
        return _UNSTORABLE.sub(REPLACEMENT, item)
    if not isinstance(item, dict | list):
        return item
    if depth >= MAX_JSON_DEPTH:
        raise LimitError(TOO_DEEP, path or None)
    if isinstance(item, list):
        return [_scrubbed(child, f"{path}[{n}]", depth + 1) for n, child in enumerate(item)]
    return {
        _UNSTORABLE.sub(REPLACEMENT, key): _scrubbed(
            child, f"{path}.{printable(key)}" if path else printable(key), depth + 1
        )
        for key, child in item.items()
    }


def check_value(value: Any, where: str = "") -> None:
    """Raise LimitError naming the first field of `value` (any JSON-like value) nested deeper than
    MAX_JSON_DEPTH or holding a lone surrogate or a NUL in a key or string. Iterative: depth cannot crash it."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, path or None)
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                raise LimitError(TOO_DEEP, path or None)
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    _check_text(key, path or None)
                name = printable(key) if isinstance(key, str) else key
                child_path = f"{path}[{name}]" if isinstance(key, int) else f"{path}.{name}" if path else name
                stack.append((child, child_path, depth + 1))


def _check_text(text: str, path: str | None) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    at = found.start()
    if found.group() == "\x00":
        raise LimitError(f"text holds a NUL character (at character {at}), which the store cannot keep", path)
    code = f"\\u{ord(found.group()):04x}"
    raise LimitError(f"text holds a lone surrogate ({code} at character {at}), which is not Unicode", path)
