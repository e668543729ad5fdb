"""Fit the builtin's confidence to the probability of being right, on the labelled suites shipped in the repo.

Each verdict of a baseline run (evals/baseline.py) contributes its kind (true positive, benign,
inconclusive), its raw confidence (the builtin's `raw_confidence`, in the verdict's ledger entry) and whether
its disposition was acceptable. One isotonic regression per kind (scikit-learn's, monotone and
non-parametric) maps raw to calibrated; its thresholds are kept as data (`tools/data/calibration.json`,
applied by agents/calibration.py). The fit also records its k-fold cross-validated ECE and Brier score: the
in-sample figures a fit reaches on its own data say little about alerts it has not seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from soctriage.agents.calibration import Calibration, CalibrationCurve, VerdictKind, kind_of
from soctriage.evals.runner import LEDGERS_DIR, read_records, safe_name
from soctriage.service.ledger_events import VerdictRecorded

# The calibrated probability never claims certainty: a few dozen verdicts of a kind cannot show it.
FLOOR, CEILING = 0.02, 0.98
FOLDS = 5
ECE_BINS = 10


@dataclass(frozen=True)
class Observation:
    suite: str
    case: str
    kind: VerdictKind
    raw: float
    correct: bool


def observations(runs: dict[str, Path]) -> list[Observation]:
    """Every builtin verdict of the run folders (suite name -> folder) with its raw confidence."""
    found = []
    for suite, folder in runs.items():
        for record in read_records(folder):
            if record.disposition is None:
                continue
            raw = _raw_confidence(folder / LEDGERS_DIR / f"{safe_name(record.id)}.jsonl")
            if raw is None:
                continue
            found.append(Observation(suite, record.id, kind_of(record.disposition), raw, record.correct))
    # Runs finish cases in any order; the folds (and so the cross-validated figures) must not depend on it.
    return sorted(found, key=lambda o: (o.suite, o.case))


def _raw_confidence(ledger: Path) -> float | None:
    if not ledger.is_file():
        return None
    for line in ledger.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("kind") == "verdict":
            verdict = VerdictRecorded.model_validate(entry["payload"])
            if verdict.raw_confidence is not None:
                return float(verdict.raw_confidence)
    return None


def _curve(points: list[Observation]) -> CalibrationCurve:
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=FLOOR, y_max=CEILING, out_of_bounds="clip")
    model.fit([p.raw for p in points], [float(p.correct) for p in points])
    return CalibrationCurve(
        x=tuple(round(float(v), 6) for v in model.X_thresholds_),
        y=tuple(round(float(v), 6) for v in model.y_thresholds_),
        n=len(points),
    )


def fit(found: Iterable[Observation]) -> Calibration:
    found = list(found)
    kinds: dict[VerdictKind, list[Observation]] = {}
    for item in found:
        kinds.setdefault(item.kind, []).append(item)
    return Calibration(
        method="isotonic regression per verdict kind (scikit-learn), clipped to [0.02, 0.98]",
        fitted_on=tuple(sorted({item.suite for item in found})),
        curves={kind: _curve(points) for kind, points in sorted(kinds.items())},
    )


def cross_validated(found: list[Observation], folds: int = FOLDS) -> dict[str, float]:
    """ECE and Brier of each verdict scored by a fit that never saw it (folds by case, deterministic)."""
    pairs: list[tuple[float, float]] = []
    for fold in range(folds):
        held = [o for n, o in enumerate(found) if n % folds == fold]
        rest = [o for n, o in enumerate(found) if n % folds != fold]
        model = fit(rest)
        pairs += [(model.apply(_disposition(o.kind), o.raw), float(o.correct)) for o in held]
    return {"ece": round(ece(pairs), 4), "brier": round(mean((c - o) ** 2 for c, o in pairs), 4)}


def _disposition(kind: VerdictKind) -> str:
    return {"benign": "false_positive", "true_positive": "true_positive"}.get(kind, "inconclusive")


def ece(pairs: list[tuple[float, float]], bins: int = ECE_BINS) -> float:
    """Expected calibration error over equal-width bins (the same binning as the calibration scorer)."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, o) for c, o in pairs if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if inside:
            total += len(inside) / len(pairs) * abs(mean(c for c, _ in inside) - mean(o for _, o in inside))
    return total


def render(calibration: Calibration, found: list[Observation]) -> str:
    """The calibration file's text: the fit, and its cross-validated quality (for the README)."""
    body = calibration.model_dump(mode="json")
    body["cross_validated"] = {"folds": FOLDS, "verdicts": len(found), **cross_validated(found)}
    return json.dumps(body, indent=1, sort_keys=True) + "\n"
