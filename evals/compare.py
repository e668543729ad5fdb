"""Compare two runs of a suite: every alert whose decision changed, and every gate that regressed.

A gate regresses when run B fails it and A passed it (or B is further out than A), or when the gate sets a
`tolerance` and B is worse than A by more than that, even inside the bounds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from soctriage.evals.report import REPORT_JSON


class CompareError(ValueError):
    """A run folder without a readable report."""


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    before: str
    after: str
    correct_before: bool | None
    correct_after: bool | None


class GateDelta(BaseModel):
    model_config = ConfigDict(frozen=True)

    metric: str
    a: int | float | None
    b: int | float | None
    passed_a: bool
    passed_b: bool
    regressed: bool


class Comparison(BaseModel):
    a: str
    b: str
    changes: list[Change]
    gates: list[GateDelta]

    @property
    def regressed(self) -> bool:
        return any(g.regressed for g in self.gates)


def load_report(run_dir: Path) -> dict[str, Any]:
    path = run_dir / REPORT_JSON if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise CompareError(f"{path}: no report (run `soctriage eval run` into that folder first)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc


def decision(alert: dict[str, Any]) -> str:
    actions = ", ".join(sorted(alert["actions"])) or "no actions"
    return f"{alert['disposition']} / {alert['status']} / [{actions}]"


def _worse_by(gate: dict[str, Any], a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0
    return b - a if gate["max"] is not None else a - b


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    before = {row["id"]: row for row in a["alerts"]}
    after = {row["id"]: row for row in b["alerts"]}
    changes = []
    for case_id in list(before) + [i for i in after if i not in before]:
        old, new = before.get(case_id), after.get(case_id)
        old_text = decision(old) if old else "(not in A)"
        new_text = decision(new) if new else "(not in B)"
        if old_text != new_text:
            changes.append(
                Change(
                    id=case_id,
                    before=old_text,
                    after=new_text,
                    correct_before=old["correct"] if old else None,
                    correct_after=new["correct"] if new else None,
                )
            )
    a_gates = {g["metric"]: g for g in a["gates"]}
    deltas = []
    for gate in b["gates"]:
        name = gate["metric"]
        a_value = a["metrics"].get(name, {}).get("value")
        passed_a = a_gates[name]["passed"] if name in a_gates else True
        worse = _worse_by(gate, a_value, gate["value"])
        regressed = (not gate["passed"] and (passed_a or worse > 0)) or (
            gate.get("tolerance") is not None and worse > gate["tolerance"] + 1e-12
        )
        deltas.append(
            GateDelta(
                metric=name,
                a=a_value,
                b=gate["value"],
                passed_a=passed_a,
                passed_b=gate["passed"],
                regressed=regressed,
            )
        )
    return Comparison(a=a["run_dir"], b=b["run_dir"], changes=changes, gates=deltas)


def render(comparison: Comparison) -> str:
    lines = [f"A: {comparison.a}", f"B: {comparison.b}", ""]
    lines.append(f"{len(comparison.changes)} alert(s) changed decision")
    for c in comparison.changes:
        verdict = ""
        if (
            c.correct_before is not None
            and c.correct_after is not None
            and c.correct_before != c.correct_after
        ):
            verdict = "  (now right)" if c.correct_after else "  (now WRONG)"
        lines.append(f"  {c.id}: {c.before}  ->  {c.after}{verdict}")
    lines += ["", "gates:"]
    for g in comparison.gates:
        state = "REGRESSED" if g.regressed else ("ok" if g.passed_b else "failing (as before)")
        lines.append(f"  {g.metric}: {g.a} -> {g.b}  {state}")
    lines.append("")
    lines.append("RESULT: gate regression" if comparison.regressed else "RESULT: no gate regressed")
    return "\n".join(lines) + "\n"
