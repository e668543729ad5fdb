"""The builtin's confidence as a probability: its raw score mapped through a fit on labelled suites.

The builtin's rules give each verdict a raw confidence; what an analyst (and auto-close) needs is the
probability that the disposition is right. `soctriage eval calibrate` fits an isotonic regression per kind of
verdict (true positive, benign, inconclusive) on the labelled suites shipped in the repo and keeps it as data
in `tools/data/calibration.json`; here that step function is applied by linear interpolation between its
thresholds. Without a fit for a kind, the raw value passes through unchanged.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from soctriage.service.domain import Disposition
from soctriage.tools.datafiles import bundled

VerdictKind = Literal["true_positive", "benign", "inconclusive"]
CALIBRATION_FILE = bundled("calibration.json")


class CalibrationCurve(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    x: tuple[float, ...] = Field(description="raw confidences, increasing")
    y: tuple[float, ...] = Field(description="the probability of being right at each of them")
    n: int = Field(ge=1, description="verdicts the curve was fitted on")

    @model_validator(mode="after")
    def _same_length(self) -> CalibrationCurve:
        if len(self.x) != len(self.y) or not self.x or list(self.x) != sorted(self.x):
            raise ValueError("x and y must be non-empty, of one length, and x increasing")
        return self


class Calibration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str
    fitted_on: tuple[str, ...] = Field(description="the suites the fit rests on")
    curves: dict[VerdictKind, CalibrationCurve]
    cross_validated: dict[str, float] | None = Field(
        default=None, description="ECE and Brier of verdicts scored by folds that never saw them"
    )

    def apply(self, disposition: Disposition, raw: float) -> float:
        curve = self.curves.get(kind_of(disposition))
        if curve is None:
            return raw
        return round(float(np.interp(raw, curve.x, curve.y)), 4)


def kind_of(disposition: str) -> VerdictKind:
    if disposition in ("false_positive", "benign_true_positive"):
        return "benign"
    return "true_positive" if disposition == "true_positive" else "inconclusive"


@cache
def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration | None:
    """The shipped fit, or None before one has been made."""
    if not path.is_file():
        return None
    return Calibration.model_validate(json.loads(path.read_text(encoding="utf-8")))


def calibrated(disposition: Disposition, raw: float) -> float:
    fit = load_calibration()
    return raw if fit is None else fit.apply(disposition, raw)
