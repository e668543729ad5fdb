"""The case-assistant eval: ExCyTIn-Bench TRAIN questions on incidents 38 and 5, asked of the case of each
question's start alert, scored by normalised exact / contains match of the expected answer.

    python -m soctriage.evals.chat [--data DIR] [--model builtin] [--out report.json]

The incidents ship in evals/excytin (MIT, from microsoft/SecRL; see its NOTICE.md).

The incidents' alerts are Sentinel `SecurityAlert` rows; `sentinel_to_ocsf` turns each into an OCSF Detection
Finding (class 2004) that the ingest layer accepts, keeping the Sentinel entities and extended properties as
vendor fields (the alert's `unmapped`). All alerts of the run are one tenant, so the assistant can find the
other alerts of the incident through similar-case retrieval, as an analyst would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from soctriage.agents.run import Triager
from soctriage.service.config import Settings
from soctriage.service.domain import Alert
from soctriage.service.ingest import Rejection, normalize_bytes

EXCYTIN_DATA = Path(__file__).resolve().parent / "excytin"
INCIDENTS = (38, 5)
TENANT = "excytin"
_GRAPHML = "{http://graphml.graphdrawing.org/xmlns}"
# OCSF observable type ids by Sentinel entity field.
_OBSERVABLES = {"Address": 2, "Url": 6, "HostName": 1, "UserPrincipalName": 5}


class QuestionResult(BaseModel):
    incident: int
    number: int
    question: str
    expected: str
    case_id: str | None
    answer: str
    correct: bool
    citations: list[int]


class ChatEvalReport(BaseModel):
    suite: str = "excytin-chat-train"
    model: str
    embedder: str
    questions: int
    correct: int
    accuracy: float
    by_incident: dict[str, dict[str, float]]
    cases: int
    seconds: float
    results: list[QuestionResult]


def _json_cell(value: str) -> Any:
    try:
        return json.loads(value) if value else None
    except ValueError:
        return value


def _time(value: str) -> str:
    return datetime.fromisoformat(value).isoformat() if value else ""


def _entities(row: dict[str, str]) -> list[dict[str, Any]]:
    """The row's entities, with `$ref` stubs dropped (their targets are listed in full elsewhere)."""
    found = _json_cell(row.get("Entities", "")) or []
    return [e for e in found if isinstance(e, dict) and "$ref" not in e]


def sentinel_to_ocsf(row: dict[str, str]) -> dict[str, Any]:
    """One Sentinel SecurityAlert row as an OCSF Detection Finding."""
    entities = _entities(row)
    techniques = (_json_cell(row.get("SubTechniques", "")) or []) + (
        _json_cell(row.get("Techniques", "")) or []
    )
    tactics = [t.strip() for t in row.get("Tactics", "").split(",") if t.strip()]
    host = next((e for e in entities if e.get("Type") == "host"), {})
    account = next((e for e in entities if e.get("Type") == "account"), {})
    process = next((e for e in entities if e.get("Type") == "process"), {})
    observables = []
    for entity in entities:
        for field, type_id in _OBSERVABLES.items():
            if isinstance(entity.get(field), str) and entity[field]:
                observables.append({"name": field, "type_id": type_id, "value": entity[field]})
    record: dict[str, Any] = {
        "class_uid": 2004,
        "time": _time(row.get("StartTime") or row["TimeGenerated"]),
        "severity": row.get("AlertSeverity") or "Unknown",
        "metadata": {
            "product": {"vendor_name": row.get("VendorName") or "Microsoft", "name": row.get("ProviderName")}
        },
        "finding_info": {
            "uid": row["SystemAlertId"],
            "title": row.get("AlertName") or row.get("DisplayName"),
            "desc": row.get("Description"),
            "attacks": [
                {"technique": {"uid": t}, "tactic": {"name": tactics[0] if tactics else None}}
                for t in dict.fromkeys(techniques)
            ],
        },
        "device": {"hostname": host.get("HostName") or row.get("CompromisedEntity") or None},
        "actor": {
            "user": {"name": account.get("Name"), "domain": account.get("NTDomain")},
            "process": {
                "name": (process.get("ImageFile") or {}).get("Name"),
                "pid": int(process["ProcessId"]) if str(process.get("ProcessId", "")).isdigit() else None,
                "cmd_line": process.get("CommandLine"),
            },
        },
        "observables": observables,
        # Vendor fields the OCSF mapping has no slot for; the ingest layer keeps them in `unmapped`.
        "sentinel": {
            "Entities": entities,
            "ExtendedProperties": _json_cell(row.get("ExtendedProperties", "")),
            "CompromisedEntity": row.get("CompromisedEntity"),
            "Tactics": tactics,
        },
    }
    return record


def alert_nodes(graphml: Path) -> dict[int, str]:
    """Graph node id → SystemAlertId, for the nodes that are alerts."""
    found = {}
    for node in ET.parse(graphml).getroot().iter(f"{_GRAPHML}node"):
        data = {d.get("key"): d.text for d in node.iter(f"{_GRAPHML}data")}
        if data.get("d1") == "alert" and data.get("d4"):
            entry = json.loads(data["d4"])
            found[int(node.get("id", "-1"))] = entry["SystemAlertId"]
    return found


def normalise(text: str) -> str:
    text = re.sub(r"[`'\"]", "", text.lower())
    return re.sub(r"\s+", " ", text).strip().rstrip(".")


def matches(expected: str, answer: str) -> bool:
    """Exact, or contained as a whole token run: 10.0.0.1 does not match inside 10.0.0.12."""
    want, got = normalise(expected), normalise(answer)
    if not want:
        return False
    return want == got or re.search(rf"(?<![\w]){re.escape(want)}(?![\w])", got) is not None


def load(data: Path, incident: int) -> tuple[list[dict[str, str]], list[dict[str, Any]], dict[int, str]]:
    rows = [
        json.loads(line)
        for line in (data / f"incident_{incident}_alerts.jsonl").read_text().splitlines()
        if line
    ]
    questions = json.loads(
        (data / "questions_train" / f"incident_{incident}_qa_incident_o1-ga_c42.json").read_text()
    )
    return rows, questions, alert_nodes(data / "graph_files" / f"incident_{incident}.graphml")


def to_alerts(rows: Iterable[dict[str, str]], incident: int) -> list[Alert]:
    alerts = []
    for row in rows:
        data = json.dumps(sentinel_to_ocsf(row)).encode()
        for item in normalize_bytes(data, f"excytin-incident-{incident}", "ocsf"):
            if isinstance(item, Rejection):
                raise ValueError(f"incident {incident} alert {row.get('SystemAlertId')}: {item.message()}")
            alerts.append(item)
    return alerts


async def run(data: Path, settings: Settings, limit: int | None = None) -> ChatEvalReport:
    started = time.perf_counter()
    results: list[QuestionResult] = []
    case_count = 0
    async with Triager(settings, group=False) as triager:
        plans = []
        for incident in INCIDENTS:
            rows, questions, nodes = load(data, incident)
            case_of: dict[str, str] = {}
            for alert in to_alerts(rows, incident):
                result = await triager.triage(alert, tenant=TENANT)
                case_of[alert.source.vendor_alert_id or ""] = result.case_id
            case_count += len(case_of)
            plans.append((incident, questions, nodes, case_of))
        await asyncio.to_thread(triager.deps.connectors.retrieval.flush)
        assistant = triager.assistant()
        for incident, questions, nodes, case_of in plans:
            for number, item in enumerate(questions[:limit] if limit else questions, start=1):
                case_id = case_of.get(nodes.get(int(item.get("start_alert", -1)), ""))
                answer_text, cited = "", []
                if case_id is not None:
                    answer = await assistant.ask(case_id, item["question"], by="eval")
                    answer_text, cited = answer.answer, list(answer.citations)
                results.append(
                    QuestionResult(
                        incident=incident,
                        number=number,
                        question=item["question"],
                        expected=str(item["answer"]),
                        case_id=case_id,
                        answer=answer_text,
                        correct=matches(str(item["answer"]), answer_text),
                        citations=cited,
                    )
                )
    by_incident = {}
    for incident in INCIDENTS:
        mine = [r for r in results if r.incident == incident]
        hits = sum(r.correct for r in mine)
        by_incident[str(incident)] = {
            "questions": len(mine),
            "correct": hits,
            "accuracy": hits / len(mine) if mine else 0.0,
        }
    correct = sum(r.correct for r in results)
    from soctriage.tools.retrieval_embed import embedder_choice

    return ChatEvalReport(
        model=settings.model,
        embedder=embedder_choice(settings),
        questions=len(results),
        correct=correct,
        accuracy=correct / len(results) if results else 0.0,
        by_incident=by_incident,
        cases=case_count,
        seconds=round(time.perf_counter() - started, 1),
        results=results,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ExCyTIn chat eval of the case assistant")
    parser.add_argument(
        "--data",
        type=Path,
        default=EXCYTIN_DATA,
        help="the ExCyTIn incidents folder (default: the bundled one)",
    )
    parser.add_argument(
        "--model", default=None, help="SOCTRIAGE_MODEL for the run (default: from the environment)"
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many questions per incident")
    parser.add_argument("--out", type=Path, default=None, help="write the full JSON report here")
    args = parser.parse_args(argv)
    if not (args.data / "questions_train").is_dir():
        parser.error(f"--data: {args.data} has no questions_train folder")
    with tempfile.TemporaryDirectory() as tmp:
        overrides: dict[str, Any] = {"home": Path(tmp) / "home", "database_url": None}
        if args.model:
            overrides["model"] = args.model
        report = asyncio.run(run(args.data, Settings(**overrides), args.limit))
    if args.out:
        args.out.write_text(report.model_dump_json(indent=2))
    summary = report.model_dump(exclude={"results"})
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
