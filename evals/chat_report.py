"""Scoring a chat suite's run: its metrics (pass rate per topic, fact recall, citations, proposals), its gates,
and `report.json` / `report.md` in the shape `eval compare` reads. The run itself is evals/chat_suite.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from soctriage.evals.chat_suite import QuestionRecord, Topic
from soctriage.evals.report import REPORT_JSON, REPORT_MD
from soctriage.evals.suite import Gate, SuiteError, SuiteSpec


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def chat_metrics(records: Sequence[QuestionRecord]) -> dict[str, dict[str, Any]]:
    """Every metric as `{value, count}`; `pass_rate_<topic>` per topic present."""
    metrics: dict[str, dict[str, Any]] = {
        "pass_rate": {"value": _rate(sum(r.passed for r in records), len(records)), "count": len(records)},
        "fact_recall": {
            "value": _rate(sum(r.facts_found for r in records), sum(r.facts for r in records)),
            "count": sum(r.facts for r in records),
        },
        "unwanted_facts": {"value": sum(len(r.unwanted) for r in records), "count": len(records)},
        "citation_rate": {
            "value": _rate(sum(not r.cites_missing for r in records), len(records)),
            "count": len(records),
        },
        "invalid_citations": {"value": sum(len(r.invalid_citations) for r in records), "count": len(records)},
        "unexpected_proposals": {
            "value": sum(r.unexpected_proposals for r in records),
            "count": len(records),
        },
        "latency_ms_per_question": {
            "value": round(sum(r.latency_ms for r in records) / len(records), 3) if records else None,
            "count": len(records),
        },
    }
    for topic in dict.fromkeys(r.topic for r in records):
        mine = [r for r in records if r.topic == topic]
        metrics[f"pass_rate_{topic}"] = {
            "value": _rate(sum(r.passed for r in mine), len(mine)),
            "count": len(mine),
        }
    return metrics


def check_chat_gates(spec: SuiteSpec) -> None:
    """A gate on a metric this kind never produces is a typo that would never fail."""
    known = set(chat_metrics([]))
    topics = {f"pass_rate_{t}" for t in Topic.__args__}  # type: ignore[attr-defined]
    unknown = [name for name in spec.gates if name not in known | topics]
    if unknown:
        raise SuiteError(
            f"suite {spec.name}: field gates: unknown metric(s) {unknown}; known: {', '.join(sorted(known | topics))}"
        )


def build_chat_report(
    spec: SuiteSpec, model: str, records: Sequence[QuestionRecord], run_dir: Path
) -> dict[str, Any]:
    metrics = chat_metrics(records)
    gates = []
    for name, gate in spec.gates.items():
        metric = metrics.get(name, {"value": None, "count": 0})
        gates.append(_gate_row(name, gate, metric))
    return {
        "suite": spec.name,
        "kind": "chat",
        "description": spec.description,
        "model": model,
        "run_dir": str(run_dir),
        "generated_at": datetime.now(UTC).isoformat(),
        "attribution": spec.attribution,
        "cases": len(records),
        "scored": len(records),
        "complete": True,
        "metrics": metrics,
        "gates": gates,
        "passed": all(g["passed"] for g in gates),
        # One row per question, in the shape `eval compare` reads: a question's "decision" is whether it
        # passed, its topic and what it proposed.
        "alerts": [
            {
                "id": r.id,
                "disposition": "passed" if r.passed else "failed",
                "status": r.topic,
                "actions": r.proposals,
                "correct": r.passed,
                "question": r.question,
                "answer": r.answer,
                "missing": r.missing,
                "unwanted": r.unwanted,
                "cites_missing": r.cites_missing,
                "invalid_citations": r.invalid_citations,
                "case_id": r.case_id,
            }
            for r in records
        ],
    }


def _gate_row(name: str, gate: Gate, metric: dict[str, Any]) -> dict[str, Any]:
    return {
        "metric": name,
        "value": metric["value"],
        "count": metric["count"],
        "min": gate.min,
        "max": gate.max,
        "tolerance": gate.tolerance,
        "passed": gate.passes(metric["value"]),
    }


def chat_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Chat eval: {report['suite']} on {report['model']}",
        "",
        report["description"],
        "",
        *([f"Attribution: {report['attribution']}", ""] if report.get("attribution") else []),
        "| metric | value | n |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {m['value']} | {m['count']} |" for name, m in report["metrics"].items()]
    lines += ["", "## Gates", ""]
    for g in report["gates"]:
        bound = " ".join(
            x
            for x in (
                f"min {g['min']}" if g["min"] is not None else "",
                f"max {g['max']}" if g["max"] is not None else "",
            )
            if x
        )
        lines.append(f"- {'PASS' if g['passed'] else 'FAIL'} {g['metric']} = {g['value']} ({bound})")
    lines += ["", "## Questions", ""]
    for row in report["alerts"]:
        mark = "PASS" if row["correct"] else "FAIL"
        lines.append(f"### {mark} {row['id']} ({row['status']}): {row['question']}")
        problems = row["missing"] + [f"unwanted {u}" for u in row["unwanted"]]
        problems += [f"no citation of a {k} entry" for k in row["cites_missing"]]
        problems += [f"invalid citation seq {s}" for s in row["invalid_citations"]]
        if problems:
            lines.append(f"Problems: {'; '.join(problems)}")
        lines += ["", "```text", row["answer"].replace("```", "'''"), "```", ""]
    return "\n".join(lines) + "\n"


def write_chat_reports(run_dir: Path, report: dict[str, Any]) -> None:
    (run_dir / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (run_dir / REPORT_MD).write_text(chat_markdown(report), encoding="utf-8")
