"""Suites built at run time from third-party records kept as they were published, each in its suite's folder
with its licence and NOTICE (so the records stay verbatim and the mapping to alerts is code).

- `sigma`: each SigmaHQ regression case (a Sysmon/Security event plus its rule's metadata) becomes an OCSF
  Detection Finding (class_uid 2004), labelled true positive with the rule's ATT&CK tags (v19-era ids
  normalised to ATT&CK v18.1, from the bundled tools/data/attack) and severity from the rule level. The rule
  author is kept (DRL 1.1).
- `vendor`: the real vendor payloads (Elastic License 2.0), labelled as the suite's NOTICE.md describes them;
  the Wazuh records were written for this project.
- `excytin` (chat suites): ExCyTIn-Bench questions on the alerts of two incidents (evals/excytin_chat.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from soctriage.evals.chat_suite import ChatCase
from soctriage.evals.excytin_chat import build_excytin
from soctriage.evals.suite import Expected, SuiteCase, SuiteError
from soctriage.service.jsonl import read_jsonl
from soctriage.tools.attack import ATTACK_DATA

Builder = Callable[[Path], tuple[list[SuiteCase], list[str]]]
ChatBuilder = Callable[[Path], tuple[list[ChatCase], list[str]]]

# --- sigma -----------------------------------------------------------------------------------------------

SIGMA_LEVELS = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
# Sigma HEAD tags with ATT&CK v19 names that v18.1 does not have (the sigma suite's NOTICE.md).
V19_TECHNIQUES = {"T1685": "T1562.001", "T1686.003": "T1562.004"}
V19_TACTICS = {"stealth": "defense-evasion", "defense-impairment": "defense-evasion"}
TECHNIQUE_TAG = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$")


def normalize_technique(technique: str) -> str:
    technique = technique.upper()
    return V19_TECHNIQUES.get(technique, technique)


def sigma_techniques(tags: list[str]) -> list[str]:
    found = (TECHNIQUE_TAG.match(t.lower()) for t in tags)
    return list(dict.fromkeys(normalize_technique(m.group(1)) for m in found if m))


def sigma_tactics(tags: list[str], known: dict[str, dict[str, Any]]) -> list[str]:
    shortnames = (V19_TACTICS.get(t.removeprefix("attack."), t.removeprefix("attack.")) for t in tags)
    return list(dict.fromkeys(s for s in shortnames if s in known))


def build_sigma(source: Path) -> tuple[list[SuiteCase], list[str]]:
    tactics = _jsonl_by(ATTACK_DATA / "tactics.jsonl", "shortname")
    techniques = _jsonl_by(ATTACK_DATA / "techniques.jsonl", "id")
    cases = []
    for number, record in read_jsonl(source, "Sigma events", SuiteError):
        rule, event = record["rule"], record["event"]["Event"]
        expected_techniques = sigma_techniques(rule.get("tags", []))
        finding = sigma_finding(record, number, tactics, techniques)
        author = rule.get("author") or "unknown author"
        cases.append(
            SuiteCase(
                id=f"sigma-{number:03d}",
                alert=finding,
                expected=Expected(
                    disposition="true_positive",
                    severity=rule.get("level") if rule.get("level") in SIGMA_LEVELS else None,
                    techniques=expected_techniques or None,
                ),
                note=f"Sigma rule '{rule['title']}' by {author} (DRL 1.1); "
                f"EventID {event['System'].get('EventID')}, {record.get('rule_path', '')}",
            )
        )
    return cases, []


def sigma_finding(
    record: dict[str, Any],
    number: int,
    tactics: dict[str, dict[str, Any]],
    techniques: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """One regression case as an OCSF Detection Finding: rule -> finding_info, event -> actor/device/evidence."""
    rule, event = record["rule"], record["event"]["Event"]
    system, data = event["System"], event.get("EventData") or {}
    epoch_ms = _epoch_ms(system.get("TimeCreated", {}).get("#attributes", {}).get("SystemTime"))
    level = SIGMA_LEVELS.get(str(rule.get("level")), 0)
    domain, user = _account(data.get("User") or _subject(data))
    finding: dict[str, Any] = {
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "activity_id": 1,
        "type_uid": 200401,
        "time": epoch_ms,
        "severity_id": level,
        "message": rule.get("description", ""),
        "metadata": {
            "version": "1.4.0",
            "product": {"name": "Sigma", "vendor_name": "SigmaHQ"},
            "labels": [f"author:{rule.get('author', '')}", "license:DRL-1.1"],
        },
        "finding_info": {
            "uid": f"{rule['id']}:{system.get('EventRecordID', number)}",
            "title": rule["title"],
            "desc": f"{rule.get('description', '').strip()} (Sigma rule by {rule.get('author', 'unknown')})",
            "analytic": {"name": rule["title"], "uid": rule["id"], "type_id": 1, "type": "Rule"},
            "attacks": _attacks(rule.get("tags", []), tactics, techniques),
        },
        "device": {"hostname": system.get("Computer")},
        "raw_data": json.dumps(record["event"], ensure_ascii=False),
        "unmapped": {
            "sigma": {k: rule.get(k) for k in ("level", "tags", "falsepositives", "logsource", "author")},
            "event_id": system.get("EventID"),
            "channel": system.get("Channel"),
            "event_data": data,
        },
    }
    if user:
        finding["actor"] = {"user": {"name": user, "domain": domain}}
    process = _process(data)
    if process:
        finding.setdefault("actor", {})["process"] = process
    target = data.get("TargetFilename") or data.get("ImageLoaded")
    if target:
        finding["evidences"] = [{"file": {"name": _basename(target), "path": target}}]
    return finding


def _process(data: dict[str, Any]) -> dict[str, Any] | None:
    image = data.get("Image")
    if not image:
        return None
    process: dict[str, Any] = {
        "name": _basename(image),
        "pid": data.get("ProcessId"),
        "cmd_line": data.get("CommandLine"),
        "file": {"name": _basename(image), "path": image},
    }
    sha256 = re.search(r"SHA256=([0-9A-Fa-f]{64})", str(data.get("Hashes", "")))
    if sha256:
        process["file"]["hashes"] = [{"algorithm_id": 3, "value": sha256.group(1).lower()}]
    parent = data.get("ParentImage")
    if parent and parent != "-":
        process["parent_process"] = {
            "name": _basename(parent),
            "pid": data.get("ParentProcessId"),
            "cmd_line": data.get("ParentCommandLine"),
            "file": {"name": _basename(parent), "path": parent},
        }
    return {k: v for k, v in process.items() if v is not None}


def _attacks(
    tags: list[str], tactics: dict[str, dict[str, Any]], techniques: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    rule_tactics = sigma_tactics(tags, tactics)
    attacks = []
    for technique in sigma_techniques(tags):
        info = techniques.get(technique, {})
        own = info.get("tactics") or []
        shortname = next((t for t in rule_tactics if t in own), (own or rule_tactics or [None])[0])
        attack: dict[str, Any] = {}
        if shortname in tactics:
            attack["tactic"] = {"name": tactics[shortname]["name"], "uid": tactics[shortname]["id"]}
        parent = technique.split(".")[0]
        attack["technique"] = {"uid": parent, "name": techniques.get(parent, {}).get("name")}
        if "." in technique:
            attack["sub_technique"] = {"uid": technique, "name": info.get("name")}
        attacks.append(attack)
    return attacks


def _subject(data: dict[str, Any]) -> str | None:
    if data.get("SubjectUserName"):
        return f"{data.get('SubjectDomainName', '')}\\{data['SubjectUserName']}"
    return data.get("UserName")


def _account(value: Any) -> tuple[str | None, str | None]:
    if not value or value == "-":
        return None, None
    domain, _, name = str(value).rpartition("\\")
    return domain or None, name


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def _epoch_ms(text: str | None) -> int:
    from datetime import UTC, datetime

    if not text:
        return 0
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.astimezone(UTC).timestamp() * 1000)


# --- vendor ----------------------------------------------------------------------------------------------

BENIGN: list[str] = ["benign_true_positive", "false_positive"]
LIKELY_FP: list[str] = ["false_positive", "benign_true_positive"]
TP: list[str] = ["true_positive"]
# Ambiguous or unlabelled: the record supports no verdict, so the right outcome is a human looking at it.
# Either an inconclusive escalation or a true positive is acceptable; auto-closing it is not.
AMBIGUOUS: list[str] = ["inconclusive", "true_positive"]

# (file, 1-based line) -> (acceptable dispositions, techniques or None, the NOTICE's reason).
VENDOR_LABELS: dict[tuple[str, int], tuple[list[str], list[str] | None, str]] = {
    ("crowdstrike-alerts-api.jsonl", 1): (LIKELY_FP, None, "OpenVPN installer at the lowest ML threshold"),
    ("crowdstrike-alerts-api.jsonl", 2): (AMBIGUOUS, None, "MFA denied for tier-0 RDP; no verdict"),
    ("crowdstrike-alerts-api.jsonl", 3): (TP, None, "analyst tag FC-TP (PUP, no remediation)"),
    ("crowdstrike-falcon-stream-epp.jsonl", 1): (AMBIGUOUS, None, "remote admin tool; maybe sanctioned"),
    ("crowdstrike-falcon-stream-epp.jsonl", 2): (LIKELY_FP, None, "atomic-red-team git clone"),
    ("crowdstrike-falcon-stream-epp.jsonl", 5): (BENIGN, None, "CrowdStrike's own test detection"),
    ("crowdstrike-falcon-stream-epp.jsonl", 6): (AMBIGUOUS, None, "custom IOA on an RMM tool"),
    ("defender-endpoint-alerts.jsonl", 1): (BENIGN, None, "investigationState Benign"),
    ("defender-endpoint-alerts.jsonl", 2): (AMBIGUOUS, None, "process injection into notepad; unlabelled"),
    ("defender-endpoint-alerts.jsonl", 4): (BENIGN, None, "investigationState Benign"),
    ("m365-graph-alerts.jsonl", 1): (LIKELY_FP, None, "MsSense.exe, Defender's own sensor"),
    ("sentinelone-alerts.jsonl", 2): (BENIGN, None, "over-broad test rule on OS telemetry"),
    ("sentinelone-alerts.jsonl", 3): (BENIGN, None, "over-broad test rule on OS telemetry"),
    ("sentinelone-threats.jsonl", 6): (LIKELY_FP, None, "USB-serial driver installer, entropy heuristics"),
    ("wazuh-alerts.jsonl", 1): (BENIGN, None, "Defender quarantines the EICAR test file"),
    ("wazuh-alerts.jsonl", 2): (AMBIGUOUS, None, "real-time protection disabled; nothing says by whom"),
    ("wazuh-alerts.jsonl", 3): (TP, ["T1110"], "SSH brute force from one outside address"),
    ("wazuh-alerts.jsonl", 4): (BENIGN, None, "ClamAV finds the EICAR test file"),
}
# Records deliberately left out, with the NOTICE's reason (anything else unlisted is reported as unlabelled).
VENDOR_SKIPPED: dict[tuple[str, int], str] = {
    ("crowdstrike-falcon-stream-epp.jsonl", 3): "synthetic parser-robustness record",
    ("crowdstrike-falcon-stream-epp.jsonl", 4): "identical to line 2 except LocalIPv6",
    ("crowdstrike-falcon-stream-detection-summary.jsonl", 1): "placeholder schema record",
    ("crowdstrike-falcon-stream-detection-summary.jsonl", 2): "placeholder schema record",
    ("defender-endpoint-alerts.jsonl", 3): "same alert id as line 2 (one row per evidence entity)",
    ("defender-endpoint-alerts.jsonl", 5): "an empty API page, not an alert",
    ("m365-incidents.jsonl", 1): "incident label (TP) and alert label (unknown) disagree",
    ("sentinelone-alerts.jsonl", 1): "placeholder schema record",
    **{("sentinelone-threats.jsonl", n): "placeholder-sanitised schema record" for n in range(1, 6)},
}


def build_vendor(source: Path) -> tuple[list[SuiteCase], list[str]]:
    cases, skipped = [], []
    for path in sorted(source.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            key = (path.name, number)
            if key in VENDOR_SKIPPED:
                skipped.append(f"{path.name}:{number}: {VENDOR_SKIPPED[key]}")
                continue
            if key not in VENDOR_LABELS:
                skipped.append(f"{path.name}:{number}: no label in the suite's NOTICE.md")
                continue
            dispositions, techniques, reason = VENDOR_LABELS[key]
            cases.append(
                SuiteCase(
                    id=f"{path.stem}-{number}",
                    alert=line,
                    expected=Expected.model_validate({"disposition": dispositions, "techniques": techniques}),
                    note=reason,
                )
            )
    return cases, skipped


# --- helpers ---------------------------------------------------------------------------------------------


def _jsonl_by(path: Path, key: str) -> dict[str, dict[str, Any]]:
    """Rows of a JSONL file by `key`, revoked rows left out."""
    return {row[key]: row for _, row in read_jsonl(path, "rows", SuiteError) if not row.get("revoked")}


BUILDERS: dict[str, Builder] = {"sigma": build_sigma, "vendor": build_vendor}
# Chat suites' builders: third-party questions with the alerts they are asked about.
CHAT_BUILDERS: dict[str, ChatBuilder] = {"excytin": build_excytin}
