"""The ExCyTIn chat suite's cases (`source: {builder: excytin}`, suite `excytin-chat`): ExCyTIn-Bench TRAIN
questions on incidents 38 and 5, each asked of the case of its start alert and scored on its one expected
answer (evals/chat_suite.py's `answer`). The incidents ship in evals/excytin (MIT, from microsoft/SecRL; see
its NOTICE.md).

The incidents' alerts are Sentinel `SecurityAlert` rows; `sentinel_to_ocsf` turns each into an OCSF Detection
Finding (class 2004) that the ingest layer accepts, keeping the Sentinel entities and extended properties as
vendor fields (the alert's `unmapped`). All alerts of the run are one tenant, so the assistant can find the
other alerts of the incident through similar-case retrieval, as an analyst would.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from soctriage.evals.chat_suite import ChatCase, Expect, Question
from soctriage.evals.suite import SuiteError
from soctriage.service.domain import Alert
from soctriage.service.ingest import Rejection, normalize_bytes

EXCYTIN_DATA = Path(__file__).resolve().parent / "excytin"
INCIDENTS = (38, 5)
_GRAPHML = "{http://graphml.graphdrawing.org/xmlns}"
# OCSF observable type ids by Sentinel entity field.
_OBSERVABLES = {"Address": 2, "Url": 6, "HostName": 1, "UserPrincipalName": 5}


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


def build_excytin(source: Path) -> tuple[list[ChatCase], list[str]]:
    """One case per incident alert, in file order, each with the questions that start from it; a question
    whose start alert is not among the incident's alerts could be asked of no case, and is left out."""
    if not (source / "questions_train").is_dir():
        raise SuiteError(f"{source}: not the ExCyTIn incidents folder (it has no questions_train folder)")
    cases: list[ChatCase] = []
    skipped: list[str] = []
    for incident in INCIDENTS:
        rows, questions, nodes = load(source, incident)
        asked: dict[str, list[Question]] = {row["SystemAlertId"]: [] for row in rows}
        for number, item in enumerate(questions, start=1):
            start = nodes.get(int(item.get("start_alert", -1)), "")
            if start not in asked:
                skipped.append(
                    f"incident {incident} question {number}: its start alert is not in the incident"
                )
                continue
            expect = Expect(answer=str(item["answer"]))
            asked[start].append(Question(topic="investigation", ask=item["question"], expect=expect))
        cases += [
            ChatCase(
                id=f"incident-{incident}-{row['SystemAlertId']}",
                alert=sentinel_to_ocsf(row),
                questions=asked[row["SystemAlertId"]],
            )
            for row in rows
        ]
    return cases, skipped
