"""The README's eval-baseline table is what the code at HEAD measures (a stale table fails CI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from service_support import SOCTRIAGE

README = Path(__file__).resolve().parents[1] / "README.md"
CALIBRATION = Path(__file__).resolve().parents[1] / "tools" / "data" / "calibration.json"


def test_the_readme_eval_baselines_and_the_calibration_are_measured_at_head(tmp_path: Path) -> None:
    check = ["--check", str(README), "--calibration", str(CALIBRATION)]
    done = subprocess.run(
        [*SOCTRIAGE, "eval", "baseline", *check, "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]


def test_a_stale_table_is_caught(tmp_path: Path) -> None:
    from soctriage.evals.baseline import END, START, replace_section

    stale = f"intro\n{START}\n| metric | redteam |\n|---|---|\n| disposition_accuracy | 0.5 (n=3) |\n{END}\n"
    assert replace_section(stale, "| fresh |", "x.md") == f"intro\n{START}\n| fresh |\n{END}\n"
