"""Split an input into records: one JSON object, a JSON array, JSONL, or pretty-printed objects back to back.

Each record comes out with the line it starts on and its exact original bytes, so a rejection can name the
place and the quarantine can keep the record whole. A bad record (malformed JSON, bytes that are not UTF-8,
over the size limit, not an object) becomes a `Rejection` and the records around it are still read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from soctriage.service.ingest import limits
from soctriage.service.ingest.errors import Rejection

Record = tuple[int, bytes, dict[str, Any] | Rejection]

_BOM = b"\xef\xbb\xbf"
_STRUCTURAL = re.compile(r'["\[\]{}]')
# The rest of a JSON string after its opening quote (unrolled so long strings do not backtrack).
_STRING_TAIL = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SCALAR_END = re.compile(r"[\s,\]}]")
_NON_SPACE = re.compile(r"\S")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what surrogateescape turns non-UTF-8 bytes into
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def iter_records(data: bytes, source: str, max_record_bytes: int) -> Iterator[Record]:
    """Yield (line, raw bytes, parsed object or Rejection) for every record in `data`."""
    offset = len(_BOM) if data.startswith(_BOM) else 0
    first = _first_non_space(data, offset)
    if first is None:
        return
    if data[first] == ord("["):
        yield from _array_records(data, source, max_record_bytes)
    elif _looks_pretty_printed(data, first, max_record_bytes):
        yield from _stream_records(data, source, max_record_bytes)
    else:
        yield from _line_records(data, offset, source, max_record_bytes)


def _first_non_space(data: bytes, start: int) -> int | None:
    for index in range(start, len(data)):
        if data[index] not in b" \t\r\n":
            return index
    return None


def _looks_pretty_printed(data: bytes, first: int, limit: int) -> bool:
    """True when the first object spills over its first line the way pretty-printers break lines.

    A truncated JSONL line also fails to close, but it stops mid-value; a pretty-printer ends its
    lines after `{`, `[`, `,` or `:`. Checking that keeps one broken JSONL line from swallowing the next.
    """
    end = data.find(b"\n", first)
    line = data[first : len(data) if end < 0 else end]
    if len(line) > limit or data[first] != ord("{"):
        return False
    text = line.decode("utf-8", "surrogateescape").rstrip()
    return _value_end(text, 0) is None and text.endswith(("{", "[", ",", ":"))


def _value_end(text: str, pos: int) -> int | None:
    """Index just past the JSON value starting at text[pos], or None when it never closes.

    Only brackets and strings are tracked; `json.loads` validates the span afterwards.
    """
    char = text[pos]
    if char == '"':
        tail = _STRING_TAIL.match(text, pos + 1)
        return tail.end() if tail else None
    if char not in "{[":
        scalar_end = _SCALAR_END.search(text, pos)
        return scalar_end.start() if scalar_end else len(text)
    depth = 0
    index = pos
    while True:
        found = _STRUCTURAL.search(text, index)
        if found is None:
            return None
        at = found.start()
        token = found.group()
        if token == '"':
            tail = _STRING_TAIL.match(text, at + 1)
            if tail is None:
                return None
            index = tail.end()
            continue
        depth += 1 if token in "{[" else -1
        if depth == 0:
            return at + 1
        index = at + 1


def _line_records(data: bytes, offset: int, source: str, limit: int) -> Iterator[Record]:
    line_no = 0
    start = offset
    while start <= len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        line_no += 1
        raw = data[start:end]
        start = end + 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip():
            continue
        # The size check comes first so an oversized line is never decoded or parsed.
        if len(raw) > limit:
            yield line_no, raw, _too_big(source, line_no, raw, limit)
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
            yield line_no, raw, Rejection(source=source, line=line_no, reason=reason, raw=raw)
            continue
        yield line_no, raw, _parse(text, raw, source, line_no, column=1)


def _array_records(data: bytes, source: str, limit: int) -> Iterator[Record]:
    text = data.decode("utf-8", "surrogateescape")
    pos = text.index("[") + 1
    line_no = 1 + text.count("\n", 0, pos)
    counted_to = pos
    while True:
        found = _NON_SPACE.search(text, pos)
        if found is None:
            yield from _broken_tail(text, pos, line_no, source, "invalid JSON: the array is never closed")
            return
        pos = found.start()
        line_no += text.count("\n", counted_to, pos)
        counted_to = pos
        if text[pos] == "]":
            trailing = _NON_SPACE.search(text, pos + 1)
            if trailing:
                start = trailing.start()
                at_line = line_no + text.count("\n", pos, start)
                yield from _broken_tail(
                    text, start, at_line, source, "invalid JSON: extra data after the array"
                )
            return
        end = _value_end(text, pos)
        if end is None:
            yield from _broken_tail(text, pos, line_no, source, None)
            return
        column = pos - text.rfind("\n", 0, pos)
        yield _record_from_span(text[pos:end], source, line_no, column, limit)
        after = _NON_SPACE.search(text, end)
        if after is None or text[after.start()] not in ",]":
            where = after.start() if after else len(text)
            at_line = line_no + text.count("\n", pos, where)
            yield from _broken_tail(
                text, where, at_line, source, "invalid JSON: expected ',' or ']' after an array element"
            )
            return
        pos = after.start() + (1 if text[after.start()] == "," else 0)


def _stream_records(data: bytes, source: str, limit: int) -> Iterator[Record]:
    text = data.decode("utf-8", "surrogateescape")
    pos = 1 if text.startswith("\ufeff") else 0
    line_no = 1
    while True:
        found = _NON_SPACE.search(text, pos)
        if found is None:
            return
        line_no += text.count("\n", pos, found.start())
        pos = found.start()
        end = _value_end(text, pos)
        if end is None:
            yield from _broken_tail(text, pos, line_no, source, None)
            return
        if text[pos] not in "{[":
            # Stray text between objects: reject up to the end of its line and carry on.
            newline = text.find("\n", pos)
            end = len(text) if newline < 0 else newline
        column = pos - text.rfind("\n", 0, pos)
        yield _record_from_span(text[pos:end], source, line_no, column, limit)
        line_no += text.count("\n", pos, end)
        pos = end


def _broken_tail(text: str, pos: int, line_no: int, source: str, reason: str | None) -> Iterator[Record]:
    """Everything from `pos` on is one unreadable record: it is rejected whole."""
    span = text[pos:].rstrip()
    raw = span.encode("utf-8", "surrogateescape")
    if reason is None:
        column = pos - text.rfind("\n", 0, pos)
        parsed = _parse(span, raw, source, line_no, column)
        reason = (
            parsed.reason if isinstance(parsed, Rejection) else "invalid JSON: the record is never closed"
        )
    yield line_no, raw, Rejection(source=source, line=line_no, reason=reason, raw=raw)


def _record_from_span(span: str, source: str, line_no: int, column: int, limit: int) -> Record:
    raw = span.encode("utf-8", "surrogateescape")
    if len(raw) > limit:
        return line_no, raw, _too_big(source, line_no, raw, limit)
    bad = _UNDECODABLE.search(span)
    if bad:
        offset = len(span[: bad.start()].encode("utf-8", "surrogateescape"))
        reason = f"not valid UTF-8: byte 0x{ord(bad.group()) - 0xDC00:02x} at offset {offset}"
        return line_no, raw, Rejection(source=source, line=line_no, reason=reason, raw=raw)
    return line_no, raw, _parse(span, raw, source, line_no, column)


def _too_big(source: str, line_no: int, raw: bytes, limit: int) -> Rejection:
    reason = f"record is {len(raw)} bytes, limit is {limit}"
    return Rejection(source=source, line=line_no, reason=reason, raw=raw)


def _parse(text: str, raw: bytes, source: str, line_no: int, column: int) -> dict[str, Any] | Rejection:
    try:
        value = json.loads(
            text,
            parse_int=limits.parse_int,
            parse_float=limits.parse_float,
            parse_constant=limits.parse_constant,
        )
        value = limits.clean_parsed(value, text)
    except json.JSONDecodeError as exc:
        if exc.lineno == 1:
            where = f"column {column + exc.colno - 1}"
        else:
            where = f"line {line_no + exc.lineno - 1} column {exc.colno}"
        return Rejection(source=source, line=line_no, reason=f"invalid JSON: {exc.msg} at {where}", raw=raw)
    except limits.LimitError as exc:
        return Rejection(source=source, line=line_no, reason=exc.reason, field=exc.field, raw=raw)
    except RecursionError:
        return Rejection(source=source, line=line_no, reason=limits.TOO_DEEP, raw=raw)
    if not isinstance(value, dict):
        kind = "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)
        reason = f"record is {kind}, not a JSON object"
        return Rejection(source=source, line=line_no, reason=reason, raw=raw)
    return value


def member_texts(text: str, key: str) -> list[str] | None:
    """The exact texts of the items under top-level `key` of the JSON object `text` (one text when the
    member is an object, one per element when it is an array), or None when they cannot be located.

    Used to give each alert of an API page or incident its own original text as `raw`.
    """
    found: list[str] | None = None
    start = _NON_SPACE.search(text)
    if start is None or text[start.start()] != "{":
        return None
    pos = start.start() + 1
    while True:
        token = _NON_SPACE.search(text, pos)
        if token is None:
            return None
        pos = token.start()
        if text[pos] == "}":
            return found
        if text[pos] == ",":
            pos += 1
            continue
        key_end = _value_end(text, pos) if text[pos] == '"' else None
        colon = _NON_SPACE.search(text, key_end) if key_end else None
        if colon is None or text[colon.start()] != ":":
            return None
        value = _NON_SPACE.search(text, colon.start() + 1)
        value_end = _value_end(text, value.start()) if value else None
        if value is None or value_end is None:
            return None
        if json.loads(text[pos:key_end]) == key:  # the last duplicate wins, as in json.loads
            found = _items_of(text, value.start(), value_end)
        pos = value_end


def _items_of(text: str, start: int, end: int) -> list[str] | None:
    if text[start] == "{":
        return [text[start:end]]
    if text[start] != "[":
        return None
    items = []
    pos = start + 1
    while True:
        token = _NON_SPACE.search(text, pos, end)
        if token is None:
            return None
        pos = token.start()
        if text[pos] == "]":
            return items
        if text[pos] == ",":
            pos += 1
            continue
        item_end = _value_end(text, pos)
        if item_end is None:
            return None
        items.append(text[pos:item_end])
        pos = item_end
