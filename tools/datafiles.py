"""Where the tools' data files are: the ones shipped in tools/data (a deployment points Settings at its own)."""

from __future__ import annotations

from pathlib import Path

BUNDLED = Path(__file__).resolve().parent / "data"


def bundled(name: str) -> Path:
    return BUNDLED / name
