"""Tracked field access for the normalizers (every field a mapping reads is known, so the rest is kept as
`unmapped`), and the parsing of the integers and times vendors send."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from soctriage.service.ingest.errors import IngestError

PathPart = str | int
FieldPath = str | tuple[PathPart, ...]
_MISSING: Any = object()


@lru_cache(maxsize=4096)
def _split(path: str) -> tuple[PathPart, ...]:
    # A numeric segment indexes a list: "evidences.0.file.name".
    return tuple(int(part) if part.isdigit() else part for part in path.split("."))


def _as_tuple(path: FieldPath) -> tuple[PathPart, ...]:
    return _split(path) if isinstance(path, str) else path


def dotted(path: FieldPath) -> str:
    return path if isinstance(path, str) else ".".join(str(part) for part in path)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class Fields:
    """Read access to one vendor record that remembers which fields were mapped.

    Whatever a normalizer never read ends up in `Alert.unmapped`, so nothing the vendor sent is lost
    from the normalized view (the exact text is in `Alert.raw` as well).
    """

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self._used: set[tuple[PathPart, ...]] = set()

    def lookup(self, path: FieldPath) -> Any:
        node: Any = self.record
        for part in _as_tuple(path):
            if isinstance(node, dict):
                node = node.get(part if isinstance(part, str) else str(part), _MISSING)
            elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
                node = node[part]
            else:
                return _MISSING
            if node is _MISSING:
                return _MISSING
        return node

    def get(self, *paths: FieldPath) -> Any:
        """The first of `paths` holding a non-empty value (marked as mapped), else None."""
        for path in paths:
            value = self.lookup(path)
            if value is not _MISSING and not _empty(value):
                self._used.add(_as_tuple(path))
                return value
        return None

    def text(self, *paths: FieldPath) -> str | None:
        value = self.get(*paths)
        if value is None or isinstance(value, dict | list):
            return None
        text = str(value).strip()
        return text or None

    def integer(self, *paths: FieldPath) -> int | None:
        return to_int(self.get(*paths))

    def items(self, path: FieldPath) -> list[Any]:
        """A list field (a lone object counts as a one-item list), without marking it mapped."""
        value = self.lookup(path)
        if isinstance(value, list):
            return value
        return [] if value is _MISSING or value is None else [value]

    def mark(self, *paths: FieldPath) -> None:
        for path in paths:
            self._used.add(_as_tuple(path))

    def time(self, *paths: FieldPath) -> datetime:
        """The alert time: the first readable timestamp among `paths`; a record without one is rejected."""
        for path in paths:
            value = self.lookup(path)
            if value is _MISSING or _empty(value):
                continue
            parsed = parse_time(value)
            if parsed is None:
                raise IngestError(f"unreadable timestamp {str(value)[:64]!r}", dotted(path))
            self._used.add(_as_tuple(path))
            return parsed
        raise IngestError("missing required field", dotted(paths[0]))

    def unmapped(self) -> dict[str, Any]:
        touched: set[tuple[PathPart, ...]] = set()
        for path in self._used:
            touched.update(path[:depth] for depth in range(1, len(path)))
        left = _leftover(self.record, (), self._used, touched)
        return left if isinstance(left, dict) else {}


def _leftover(value: Any, path: tuple[PathPart, ...], used: set, touched: set) -> Any:
    if path in used:
        return _MISSING
    if path and path not in touched:
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            rest = _leftover(item, (*path, key), used, touched)
            if rest is not _MISSING and rest is not None:
                out[key] = rest
        return out or _MISSING
    if isinstance(value, list):
        rest_items = [_leftover(item, (*path, index), used, touched) for index, item in enumerate(value)]
        if all(item is _MISSING for item in rest_items):
            return _MISSING
        # Fully mapped elements stay as None so the positions of the others keep their meaning.
        return [None if item is _MISSING else item for item in rest_items]
    return value


def to_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 text or an epoch number; the epoch unit (s, ms, µs, ns) is inferred from the magnitude."""
    if isinstance(value, bool):
        return None
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            number = float(text)
        else:
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                return None
    if number is None or number <= 0:
        return None
    for divisor in (1, 1e3, 1e6, 1e9):
        if number / divisor < 1e11:  # 1e11 s is the year 5138: anything larger is a finer unit
            try:
                return datetime.fromtimestamp(number / divisor, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None
