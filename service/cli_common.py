"""What every `soctriage` command shares when it talks to people and scripts: the store notice, opening a store
without creating one for a read, tables with a header row, JSON, and a progress bar.

Results go to stdout; everything about the run (the store, progress, problems) goes to stderr, so stdout stays
clean for a script.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from soctriage.service.config import Settings
from soctriage.service.store import Store, StoreNotFoundError, store_label

# DESIGN §7: 0 ok, 1 a check failed, 2 bad input or usage.
EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of text")]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Say what is wrong on stderr (one line) and end the command with `code`: `raise fail(...)`."""
    typer.echo(message, err=True)
    return typer.Exit(code)


def announce_store(settings: Settings) -> None:
    typer.echo(f"store: {store_label(settings.sqlalchemy_url)}", err=True)


def open_store(settings: Settings, *, create: bool, missing_exit: int = 2) -> Store:
    """The configured store, named on stderr. A read (`create=False`) never makes a store: where none exists
    the command stops with `missing_exit` and says where it looked."""
    announce_store(settings)
    try:
        return Store.open(settings, create=create)
    except StoreNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(missing_exit) from exc


def require_store(settings: Settings, *, missing_exit: int = 2) -> None:
    """Name the store and stop unless it exists (for commands that open it through the Triager)."""
    open_store(settings, create=False, missing_exit=missing_exit).close()


def write_out(out: Path, data: bytes) -> None:
    """Write a command's result to its --out FILE. A path that cannot take it (a missing folder, a directory, a
    full disk) is bad input: one line naming it, exit 2."""
    try:
        out.write_bytes(data)
    except OSError as exc:
        typer.echo(f"--out {out}: cannot write: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from exc


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a header row; the last column is not padded (it may be long)."""
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in table
    ]
    return "\n".join(line.rstrip() for line in lines)


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


class Progress:
    """A one-line bar on stderr while a person watches a terminal; nothing at all when stderr is piped or
    redirected, so logs and scripts see only the results."""

    _MIN_REDRAW_S = 0.1

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self._stream = stream or sys.stderr
        self.enabled = self._stream.isatty()
        self._started = self._drawn = time.monotonic()

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count, self.total)

    def update(self, done: int, total: int | None) -> None:
        """Set how far the work is (for work that counts for itself, e.g. a report reading cases)."""
        self.done, self.total = done, total
        if self.enabled and (time.monotonic() - self._drawn >= self._MIN_REDRAW_S or done == total):
            self._draw()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _draw(self) -> None:
        self._drawn = now = time.monotonic()
        rate = self.done / max(now - self._started, 1e-9)
        if self.total:
            filled = int(30 * self.done / self.total)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}"
        else:
            bar = f"{self.done}"
        self._stream.write(f"\r\x1b[K{self.label} {bar} ({rate:.1f}/s)")
        self._stream.flush()
