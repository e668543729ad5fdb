"""The README stays true to the code: its set-up commands match .ci/run, its settings table matches Settings."""

from __future__ import annotations

import re
from pathlib import Path

from soctriage.service.config import settings_table

ROOT = Path(__file__).resolve().parents[1]


def test_readme_settings_table_is_generated_from_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    assert settings_table() in readme, "regenerate it: .venv/bin/python -m soctriage.service.config README.md"


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(python3 -m venv[^\n]+)\n```", readme)
    assert len(commands) == 2, "README must have exactly two set-up commands"
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
