"""Where the tools' data files are: the ones shipped in tools/data (a deployment points Settings at its own)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

BUNDLED = Path(__file__).resolve().parent / "data"


def bundled(name: str) -> Path:
    return BUNDLED / name


def yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """`PATH:LINE: not valid YAML: what` on one line (PyYAML's own message spans several, with a caret)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark else str(path)
    return f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}"


def yaml_line(tree: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """The line (1-based) of the deepest node of a composed YAML document on the path `loc` (mapping keys
    and list indexes, as a validation error's `loc` gives them); None for an empty document."""
    if tree is None:
        return None
    node, line = tree, tree.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line
