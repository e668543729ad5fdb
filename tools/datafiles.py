"""Where the tools' data files are: the ones shipped in tools/data (a deployment points Settings at its own)."""

from __future__ import annotations

from pathlib import Path

import yaml

BUNDLED = Path(__file__).resolve().parent / "data"


def bundled(name: str) -> Path:
    return BUNDLED / name


def yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """`PATH:LINE: not valid YAML: what` on one line (PyYAML's own message spans several, with a caret)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark else str(path)
    return f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}"
