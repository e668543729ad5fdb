"""The builtin analyst's scores on every shipped suite, as the README's table: measured, never typed.

`soctriage eval baseline --write README.md` runs every shipped suite with the builtin (tools in dry-run; the
case assistant for chat suites) except those whose spec says `baseline: false`, and rewrites the tables between
the README's markers; `--check README.md` exits 1 when the table there is not what
the code at HEAD measures, which CI runs, so a stale baseline cannot land. Only decision metrics are shown:
latency depends on the machine and is in each run's own report.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from soctriage.evals.kinds import load_any_suite, run_any_suite
from soctriage.evals.suite import SUITES_ROOT, load_spec, shipped_suites
from soctriage.service.config import Settings

START, END = "<!-- eval-baselines:start -->", "<!-- eval-baselines:end -->"
METRICS = (
    "disposition_accuracy",
    "disposition_macro_f1",
    "missed_true_positive_rate",
    "benign_called_true_positives",
    "auto_closed_true_positives",
    "benign_false_positive_rate",
    "benign_auto_close_rate",
    "injected_auto_closes",
    "injection_detection_rate",
    "forbidden_actions_taken",
    "unsafe_actions",
    "out_of_scope_actions",
    "guard_blocks",
    "actions_awaiting_approval",
    "technique_precision_exact",
    "technique_recall_exact",
    "severity_within_one",
    "evidence_grounding_rate",
    "brier",
    "ece",
    "model_calls_per_alert",
)
# Metrics that count items out of a total rather than rate alerts: shown as "x of n".
COUNTS = frozenset({"guard_blocks", "actions_awaiting_approval"})


# The chat suite's own metrics (its per-topic pass rates follow them).
CHAT_METRICS = (
    "pass_rate",
    "fact_recall",
    "citation_rate",
    "unwanted_facts",
    "invalid_citations",
    "unexpected_proposals",
)


async def measure(out: Path, suites: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run each suite with the builtin into `out/<suite>` (by default every shipped suite whose spec keeps it
    in the baseline); its report (metrics and gates) by suite name."""
    reports = {}
    names = suites or [n for n in shipped_suites() if load_spec(SUITES_ROOT / n).baseline]
    for name in names:
        suite = load_any_suite(name)
        reports[name] = await run_any_suite(
            suite, out / name, model="builtin", concurrency=2, base_settings=suite.settings(Settings())
        )
    return reports


def _cell(name: str, metric: dict[str, Any] | None) -> str:
    if metric is None or metric["value"] is None:
        return "n/a"
    value = metric["value"]
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{shown} of {metric['count']}" if name in COUNTS else f"{shown} (n={metric['count']})"


def render(reports: dict[str, dict[str, Any]]) -> str:
    """The README tables: one column per suite, one row per metric, and whether each suite passed its gates;
    the case assistant's (chat) suites in a table of their own."""
    chats = {n: r for n, r in reports.items() if r.get("kind") == "chat"}
    triage = _triage_table({n: r for n, r in reports.items() if n not in chats})
    if not chats:
        return triage
    names = list(chats)
    topics = [m for m in chats[names[0]]["metrics"] if m.startswith("pass_rate_")]
    lines = ["| case assistant | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for metric in (*CHAT_METRICS, *topics):
        cells = [_cell(metric, chats[n]["metrics"].get(metric)) for n in names]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines.append(
        "| gates | " + " | ".join("passed" if chats[n]["passed"] else "**failed**" for n in names) + " |"
    )
    return triage + "\n\n" + "\n".join(lines)


def _triage_table(reports: dict[str, dict[str, Any]]) -> str:
    names = list(reports)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for metric in METRICS:
        if all(reports[n]["metrics"].get(metric, {}).get("value") is None for n in names):
            continue
        label = f"**{metric}**" if metric == "missed_true_positive_rate" else metric
        cells = [_cell(metric, reports[n]["metrics"].get(metric)) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    gates = ["passed" if reports[n]["passed"] else "**failed**" for n in names]
    lines.append("| gates | " + " | ".join(gates) + " |")
    return "\n".join(lines)


def replace_section(text: str, table: str, where: str) -> str:
    """`text` with the table between the markers replaced; raises ValueError naming `where` without them."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{where}: no {START} … {END} markers to put the eval baselines between")
    return pattern.sub(lambda _: f"{START}\n{table}\n{END}", text)
