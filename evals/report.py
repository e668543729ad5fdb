"""Reports of a run: report.json (every metric with its count, gates, per-alert decisions), report.md, and a
self-contained report.html with an inline-SVG confusion matrix and calibration plot (no scripts, no CDN)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from soctriage.evals.record import CaseRecord
from soctriage.evals.runner import RunInfo
from soctriage.evals.scorers import Metric, score
from soctriage.evals.suite import Gate, SuiteError, SuiteSpec

REPORT_JSON, REPORT_MD, REPORT_HTML = "report.json", "report.md", "report.html"


class GateResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    metric: str
    value: int | float | None
    count: int
    min: float | None
    max: float | None
    tolerance: float | None
    passed: bool


def check_gate_names(spec: SuiteSpec) -> None:
    """A gate on a metric no scorer produces is a typo that would silently never fail."""
    known = score([], spec.scorers)
    unknown = [name for name in spec.gates if name not in known]
    if unknown:
        raise SuiteError(
            f"suite {spec.name}: field gates: unknown metric(s) {unknown}; known: {', '.join(known)}"
        )


def evaluate_gates(gates: dict[str, Gate], metrics: dict[str, Metric]) -> list[GateResult]:
    results = []
    for name, gate in gates.items():
        metric = metrics[name]
        results.append(
            GateResult(
                metric=name,
                value=metric.value,
                count=metric.count,
                min=gate.min,
                max=gate.max,
                tolerance=gate.tolerance,
                passed=gate.passes(metric.value),
            )
        )
    return results


def alert_row(record: CaseRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "note": record.note,
        "expected": list(record.expected.acceptable),
        "disposition": record.disposition,
        "status": record.status,
        "severity": record.severity,
        "confidence": record.confidence,
        "correct": record.correct,
        "techniques": record.techniques,
        "actions": [f"{a.tool}({a.target})={a.decision}/{a.status}" for a in record.actions],
        "injection_markers": record.injection_markers,
        "error": record.error,
        "case_id": record.case_id,
    }


def build_report(
    info: RunInfo, spec: SuiteSpec, records: Sequence[CaseRecord], run_dir: Path
) -> dict[str, Any]:
    metrics = score(records, spec.scorers)
    gates = evaluate_gates(spec.gates, metrics)
    return {
        "suite": spec.name,
        "kind": "triage",
        "description": spec.description,
        "model": info.model,
        "run_dir": str(run_dir),
        "generated_at": datetime.now(UTC).isoformat(),
        "replay_of": info.replay_of,
        "attribution": spec.attribution,
        "cases": info.cases,
        "scored": len(records),
        "complete": len(records) == info.cases,
        "skipped_source_records": info.skipped,
        "metrics": {name: m.model_dump(exclude={"name"}) for name, m in metrics.items()},
        "gates": [g.model_dump() for g in gates],
        "passed": all(g.passed for g in gates),
        "alerts": [alert_row(r) for r in records],
    }


def write_reports(run_dir: Path, report: dict[str, Any]) -> None:
    (run_dir / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (run_dir / REPORT_MD).write_text(markdown(report), encoding="utf-8")
    (run_dir / REPORT_HTML).write_text(render_html(report), encoding="utf-8")


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def gate_text(g: dict[str, Any]) -> str:
    bounds = []
    if g["min"] is not None:
        bounds.append(f">= {g['min']}")
    if g["max"] is not None:
        bounds.append(f"<= {g['max']}")
    if g.get("tolerance") is not None:
        bounds.append(f"(at most {g['tolerance']} worse than baseline)")
    return " ".join(bounds)


def _cell(text: Any) -> str:
    return str(text if text is not None else "-").replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = [
        f"# Eval report: {report['suite']} on `{report['model']}` — gates {verdict}",
        "",
        f"{report['scored']} of {report['cases']} alerts scored; run folder `{report['run_dir']}`.",
    ]
    if report.get("replay_of"):
        lines.append(f"Replay with tool results frozen from `{report['replay_of']}`.")
    if report.get("attribution"):
        lines += ["", f"Attribution: {report['attribution']}"]
    lines += ["", "## Gates", "", "| metric | value | count | gate | result |", "|---|---|---|---|---|"]
    for g in report["gates"]:
        result = "pass" if g["passed"] else "**FAIL**"
        lines.append(f"| {g['metric']} | {fmt(g['value'])} | {g['count']} | {gate_text(g)} | {result} |")
    lines += ["", "## Metrics", "", "| metric | value | count |", "|---|---|---|"]
    for name, m in report["metrics"].items():
        lines.append(f"| {name} | {fmt(m['value'])} | {m['count']} |")
    confusion = report["metrics"].get("disposition_macro_f1", {}).get("detail", {})
    if confusion.get("labels"):
        labels = confusion["labels"]
        lines += ["", "## Confusion matrix (rows expected, columns predicted)", ""]
        lines.append("| expected \\ predicted | " + " | ".join(labels) + " |")
        lines.append("|---" * (len(labels) + 1) + "|")
        for e in labels:
            lines.append(f"| {e} | " + " | ".join(str(confusion["confusion"][e][p]) for p in labels) + " |")
    lines += [
        "",
        "## Alerts",
        "",
        "| id | expected | disposition | status | conf | actions | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in report["alerts"]:
        mark = "" if a["correct"] else " ✗"
        lines.append(
            f"| {_cell(a['id'])} | {_cell('/'.join(a['expected']))} | {_cell(a['disposition'])}{mark} | "
            f"{_cell(a['status'])} | {fmt(a['confidence'])} | {_cell('; '.join(a['actions']))} | "
            f"{_cell(a['error'] or a['note'])} |"
        )
    if report["skipped_source_records"]:
        lines += ["", "## Source records left out", ""] + [f"- {s}" for s in report["skipped_source_records"]]
    return "\n".join(lines) + "\n"


# --- HTML -----------------------------------------------------------------------------------------------


def confusion_svg(detail: dict[str, Any]) -> str:
    labels: list[str] = detail.get("labels", [])
    if not labels:
        return "<p>No dispositions to plot.</p>"
    matrix = detail["confusion"]
    cell, left, top = 70, 170, 120
    size = len(labels)
    peak = max((matrix[e][p] for e in labels for p in labels), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + cell * size + 20}" '
        f'height="{top + cell * size + 40}" role="img" aria-label="confusion matrix">',
        f'<text x="{left + cell * size / 2}" y="16" text-anchor="middle" font-weight="bold">predicted</text>',
        f'<text x="12" y="{top + cell * size / 2}" transform="rotate(-90 12 {top + cell * size / 2})" '
        'text-anchor="middle" font-weight="bold">expected</text>',
    ]
    for i, label in enumerate(labels):
        x = left + cell * i + cell / 2
        parts.append(
            f'<text x="{x}" y="{top - 8}" transform="rotate(-40 {x} {top - 8})" font-size="12">{html.escape(label)}</text>'
        )
        parts.append(
            f'<text x="{left - 8}" y="{top + cell * i + cell / 2 + 4}" text-anchor="end" font-size="12">'
            f"{html.escape(label)}</text>"
        )
    for r, expected in enumerate(labels):
        for c, predicted in enumerate(labels):
            n = matrix[expected][predicted]
            shade = 0.1 + 0.9 * n / peak if n else 0.0
            hue = "34,139,34" if r == c else "200,40,40"
            x, y = left + cell * c, top + cell * r
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgba({hue},{shade:.2f})" '
                'stroke="#999"/>'
            )
            parts.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 5}" text-anchor="middle">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def calibration_svg(detail: dict[str, Any]) -> str:
    bins = detail.get("bins", [])
    if not bins:
        return "<p>No confidences to plot.</p>"
    size, pad = 300, 40
    total = sum(b["count"] for b in bins)

    def px(v: float) -> float:
        return pad + v * size

    def py(v: float) -> float:
        return pad + (1 - v) * size

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 2 * pad}" height="{size + 2 * pad + 10}" '
        'role="img" aria-label="calibration plot">',
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#333"/>',
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#999" stroke-dasharray="4 4"/>',
        f'<text x="{pad + size / 2}" y="{size + 2 * pad}" text-anchor="middle">confidence</text>',
        f'<text x="12" y="{pad + size / 2}" transform="rotate(-90 12 {pad + size / 2})" text-anchor="middle">'
        "accuracy</text>",
    ]
    for tick in (0, 0.5, 1):
        parts.append(
            f'<text x="{px(tick)}" y="{py(0) + 14}" text-anchor="middle" font-size="10">{tick}</text>'
        )
        parts.append(f'<text x="{pad - 4}" y="{py(tick) + 4}" text-anchor="end" font-size="10">{tick}</text>')
    for b in bins:
        width = (b["hi"] - b["lo"]) * size
        height = b["count"] / total * size * 0.3
        parts.append(
            f'<rect x="{px(b["lo"])}" y="{py(0) - height}" width="{width}" height="{height}" '
            f'fill="rgba(70,130,180,0.25)"><title>{b["count"]} alerts</title></rect>'
        )
    points = " ".join(f"{px(b['confidence']):.1f},{py(b['accuracy']):.1f}" for b in bins)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#c62828" stroke-width="2"/>')
    for b in bins:
        parts.append(
            f'<circle cx="{px(b["confidence"]):.1f}" cy="{py(b["accuracy"]):.1f}" r="4" fill="#c62828">'
            f"<title>confidence {b['confidence']}, accuracy {b['accuracy']}, {b['count']} alerts</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict[str, Any]) -> str:
    e = html.escape
    verdict = "PASSED" if report["passed"] else "FAILED"
    gate_rows = "".join(
        f"<tr class={'pass' if g['passed'] else 'fail'}><td>{e(g['metric'])}</td><td>{e(fmt(g['value']))}</td>"
        f"<td>{g['count']}</td><td>{e(gate_text(g))}</td><td>{'pass' if g['passed'] else 'FAIL'}</td></tr>"
        for g in report["gates"]
    )
    metric_rows = "".join(
        f"<tr><td>{e(name)}</td><td>{e(fmt(m['value']))}</td><td>{m['count']}</td></tr>"
        for name, m in report["metrics"].items()
    )
    alert_rows = "".join(
        f"<tr class={'pass' if a['correct'] else 'fail'}><td>{e(a['id'])}</td><td>{e('/'.join(a['expected']))}</td>"
        f"<td>{e(str(a['disposition']))}</td><td>{e(str(a['status']))}</td><td>{e(fmt(a['confidence']))}</td>"
        f"<td>{e('; '.join(a['actions']))}</td><td>{e(a['error'] or a['note'] or '')}</td></tr>"
        for a in report["alerts"]
    )
    metrics = report["metrics"]
    skipped = "".join(f"<li>{e(s)}</li>" for s in report["skipped_source_records"])
    attribution = f"<p>Attribution: {e(report['attribution'])}</p>" if report.get("attribution") else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Eval {e(report["suite"])} / {e(report["model"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px;
text-align: left; font-size: 13px; }} tr.fail td {{ background: #fdecea; }} .figs {{ display: flex; gap: 3em;
flex-wrap: wrap; }}
</style></head><body>
<h1>Eval report: {e(report["suite"])} on <code>{e(report["model"])}</code> &mdash; gates {verdict}</h1>
<p>{report["scored"]} of {report["cases"]} alerts scored; run folder <code>{e(report["run_dir"])}</code>;
generated {e(report["generated_at"])}.</p>{attribution}
<h2>Gates</h2><table><tr><th>metric</th><th>value</th><th>count</th><th>gate</th><th>result</th></tr>{gate_rows}</table>
<div class="figs"><div><h2>Confusion matrix</h2>
{confusion_svg(metrics.get("disposition_macro_f1", {}).get("detail", {}))}</div>
<div><h2>Calibration</h2>{calibration_svg(metrics.get("ece", {}).get("detail", {}))}</div></div>
<h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>count</th></tr>{metric_rows}</table>
<h2>Alerts</h2><table><tr><th>id</th><th>expected</th><th>disposition</th><th>status</th><th>confidence</th>
<th>actions</th><th>note</th></tr>{alert_rows}</table>
{f"<h2>Source records left out</h2><ul>{skipped}</ul>" if skipped else ""}
</body></html>
"""
