"""Wazuh `alerts.json` records: rule, agent, and the decoded `data` (Windows eventchannel `data.win.*`,
Sysmon, syslog `srcip`/`srcuser`, audit, FIM `syscheck`).

Severity: `rule.level` 0–15 with the bands of the Wazuh dashboard: 0–3 informational, 4–6 low,
7–11 medium, 12–14 high, 15 critical.
ATT&CK: `rule.mitre.id` (technique ids), paired with `rule.mitre.technique` names and `rule.mitre.tactic`.
Alerts without an `id` (e.g. exported from the indexer without `_id`) get the derived sha256 id.
"""

from __future__ import annotations

import re
from typing import Any

from soctriage.service.domain import Alert, Device, Network, Rule, SeverityId, User
from soctriage.service.ingest.common import (
    build_alert,
    first_ip,
    int_or_none,
    make_attack,
    make_file,
    make_parent,
    make_process,
    severity_from_bands,
    some,
    split_account,
)
from soctriage.service.ingest.fields import Fields
from soctriage.service.ingest.observables import Observables

_LEVEL_BANDS = (
    (4, SeverityId.INFORMATIONAL),
    (7, SeverityId.LOW),
    (12, SeverityId.MEDIUM),
    (15, SeverityId.HIGH),
    (16, SeverityId.CRITICAL),
)
_EVENT = "data.win.eventdata"
_SYSMON_HASH = re.compile(r"SHA256=([0-9A-Fa-f]{64})")


def is_wazuh(record: dict[str, Any]) -> bool:
    rule = record.get("rule")
    return (
        isinstance(rule, dict)
        and "level" in rule
        and (isinstance(record.get("agent"), dict) or isinstance(record.get("manager"), dict))
    )


def normalize(record: dict[str, Any], raw: str) -> list[Alert]:
    f = Fields(record)
    vendor_id = f.text("id", "_id")
    time = f.time("timestamp", "@timestamp")
    title = f.text("rule.description")
    seen = Observables()
    for path in ("data.win.system.computer", "predecoder.hostname"):
        seen.add("hostname", f.get(path))
    seen.from_text(f.get(f"{_EVENT}.path"))  # Defender puts the download URL of a detection here
    hashes = f.get(f"{_EVENT}.hashes")
    sysmon_sha256 = _SYSMON_HASH.search(str(hashes)) if hashes else None

    domain, account = split_account(
        f.text(
            f"{_EVENT}.targetUserName",
            f"{_EVENT}.subjectUserName",
            f"{_EVENT}.user",
            f"{_EVENT}.detection User",
            "data.srcuser",
            "data.dstuser",
            "data.audit.auid",
        )
    )
    user_domain = domain or f.text(f"{_EVENT}.targetDomainName", f"{_EVENT}.subjectDomainName")
    process_name = f.text(f"{_EVENT}.process Name")
    parent = make_parent(
        pid=f.get(f"{_EVENT}.parentProcessId"),
        cmdline=f.get(f"{_EVENT}.parentCommandLine"),
        path=f.get(f"{_EVENT}.parentImage"),
    )
    process = make_process(
        name=None if (process_name or "").lower() == "unknown" else process_name,
        pid=f.get(f"{_EVENT}.processId", "data.audit.pid"),
        cmdline=f.get(f"{_EVENT}.commandLine", "data.audit.command"),
        path=f.get(f"{_EVENT}.image", "data.audit.exe"),
        sha256=sysmon_sha256.group(1) if sysmon_sha256 else None,
        parent=parent,
    )
    return [
        build_alert(
            fmt="wazuh",
            vendor="Wazuh",
            product="Wazuh",
            vendor_alert_id=vendor_id,
            fields=f,
            raw=raw,
            time=time,
            title=title,
            severity=severity_from_bands(f.get("rule.level"), _LEVEL_BANDS),
            description=f.text("full_log", "data.win.system.message"),
            rule=some(Rule, name=title, uid=f.text("rule.id")),
            attacks=_attacks(f),
            device=some(
                Device,
                hostname=f.text("agent.name"),
                ip=first_ip(f.get("agent.ip")),
                os=None,
                uid=f.text("agent.id"),
            ),
            user=some(User, name=account, domain=user_domain, uid=f.text(f"{_EVENT}.targetUserSid")),
            process=process,
            file=make_file(
                path=f.get("syscheck.path", f"{_EVENT}.targetFilename"),
                sha256=f.get("syscheck.sha256_after"),
                sha1=f.get("syscheck.sha1_after"),
                md5=f.get("syscheck.md5_after"),
            ),
            network=some(
                Network,
                src_ip=first_ip(f.get("data.srcip", f"{_EVENT}.ipAddress", f"{_EVENT}.sourceIp")),
                dst_ip=first_ip(f.get("data.dstip", f"{_EVENT}.destinationIp")),
                dst_port=int_or_none(f.get("data.dstport", f"{_EVENT}.destinationPort")),
                domain=f.text(f"{_EVENT}.queryName", f"{_EVENT}.destinationHostname"),
                url=f.text("data.url"),
            ),
            observables=seen,
        )
    ]


def _attacks(f: Fields) -> list[Any]:
    ids = f.items("rule.mitre.id")
    names = f.items("rule.mitre.technique")
    tactics = f.items("rule.mitre.tactic")
    attacks = []
    for index, technique in enumerate(ids):
        name = names[index] if len(names) == len(ids) else None
        # Wazuh lists tactics for the rule as a whole; pair them only when the lists line up.
        tactic = tactics[0] if len(tactics) == 1 else tactics[index] if len(tactics) == len(ids) else None
        attacks.append(make_attack(tactic=tactic, technique_id=technique, technique_name=name))
    if any(attacks):
        f.mark("rule.mitre.id")
        if len(names) == len(ids):
            f.mark("rule.mitre.technique")
        if len(tactics) == 1 or len(tactics) == len(ids):
            f.mark("rule.mitre.tactic")
    return attacks
