"""Confidence is the probability that the disposition is right: the shipped fit, how it is applied, how it is
made."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from service_support import SOCTRIAGE, sample_bytes, service_env
from soctriage.agents.calibration import Calibration, load_calibration
from soctriage.evals.calibrate import Observation, cross_validated, ece, fit


def test_the_shipped_fit_is_monotone_bounded_and_cross_validated() -> None:
    shipped = load_calibration()
    assert shipped is not None and set(shipped.curves) == {"true_positive", "benign", "inconclusive"}
    for curve in shipped.curves.values():
        assert list(curve.y) == sorted(curve.y) and all(0.02 <= y <= 0.98 for y in curve.y)
    assert shipped.cross_validated is not None and shipped.cross_validated["ece"] <= 0.05


def test_every_verdict_carries_the_calibrated_figure_and_its_raw_one(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(sample_bytes("crowdstrike-lsass-dump.json") + b"\n")
    home = tmp_path / "home"
    done = subprocess.run(
        [*SOCTRIAGE, "triage", "--json", str(alerts)], env=service_env(home), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    shown = subprocess.run(
        [*SOCTRIAGE, "cases", "show", result["case_id"], "--ledger", "--json"],
        env=service_env(home),
        capture_output=True,
        text=True,
    )
    verdict = next(e for e in json.loads(shown.stdout)["ledger"] if e["kind"] == "verdict")["payload"]
    shipped = load_calibration()
    assert shipped is not None
    expected = shipped.apply(result["disposition"], verdict["raw_confidence"])
    assert result["confidence"] == verdict["confidence"] == expected


def observations(points: list[tuple[str, float, bool]]) -> list[Observation]:
    return [Observation("s", f"c{n}", kind, raw, ok) for n, (kind, raw, ok) in enumerate(points)]  # type: ignore[arg-type]


def test_the_fit_maps_raw_scores_to_observed_rates_per_kind() -> None:
    # True positives right 1 time in 4 at raw 0.6 and always at raw 0.9; benign calls always right.
    found = observations(
        [("true_positive", 0.6, n == 0) for n in range(4)]
        + [("true_positive", 0.9, True)] * 4
        + [("benign", 0.85, True)] * 3
    )
    made = fit(found)
    assert made.apply("true_positive", 0.6) == 0.25
    assert made.apply("true_positive", 0.9) == 0.98  # never certainty
    assert made.apply("false_positive", 0.85) == 0.98
    assert made.apply("inconclusive", 0.5) == 0.5  # no curve for a kind it never saw: raw passes through
    assert Calibration.model_validate(made.model_dump()) == made
    assert set(cross_validated(found)) == {"ece", "brier"}


def test_expected_calibration_error() -> None:
    assert ece([(0.25, 1.0), (0.25, 0.0), (0.25, 0.0), (0.25, 0.0)]) == 0.0
    assert abs(ece([(0.9, 0.0), (0.9, 0.0)]) - 0.9) < 1e-9
