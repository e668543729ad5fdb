"""Reading JSON Lines: one JSON value a line, blank lines skipped, and an error that names the file and the
line. Every JSONL reader (data tables, eval suites, ledger exports) reads through here and validates the
values itself."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def jsonl_rows(
    lines: Iterable[str],
    source: str | None,
    error: type[Exception] = ValueError,
    *,
    comments: bool = False,
) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every line that holds something; `comments` also skips lines starting with
    `#`. A line that is not JSON raises `error("SOURCE:N: not JSON: why")` (`line N` without a source)."""
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or (comments and text.startswith("#")):
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{source}:{number}" if source else f"line {number}"
            raise error(f"{where}: not JSON: {exc.msg}") from exc
        yield number, value


def read_jsonl(
    path: Path, what: str, error: type[Exception] = ValueError, *, comments: bool = False
) -> Iterator[tuple[int, Any]]:
    """The rows of a JSONL file (see `jsonl_rows`); a file that cannot be read raises `error("PATH: cannot
    read WHAT: why")` here, not on the first row."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    return jsonl_rows(text.splitlines(), str(path), error, comments=comments)
