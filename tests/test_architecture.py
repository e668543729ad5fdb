"""DESIGN §10's layers hold: the import-linter contracts in .importlinter are kept, and they do catch a break.

The package is installed in editable mode through a path hook, which import-linter cannot walk, so the tests
lay the source folders out as a plain `soctriage` package (symlinks) and point it there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def layout(tmp_path: Path, *, copy: str | None = None) -> Path:
    package = tmp_path / "soctriage"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for folder in ("agents", "tools", "service", "evals", "prompts"):
        if folder == copy:
            shutil.copytree(
                ROOT / folder, package / folder, ignore=shutil.ignore_patterns("__pycache__", "data")
            )
        else:
            (package / folder).symlink_to(ROOT / folder)
    return tmp_path


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(CONTRACTS)], cwd=path, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_layers_of_design_section_10_hold(tmp_path: Path) -> None:
    done = lint(layout(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout


def test_a_tool_that_imports_an_agent_breaks_a_contract(tmp_path: Path) -> None:
    root = layout(tmp_path, copy="tools")
    (root / "soctriage" / "tools" / "shortcut.py").write_text("from soctriage.agents import builtin\n")
    done = lint(root)
    assert done.returncode == 1 and "Tools never import agents, evals or the faces BROKEN" in done.stdout
