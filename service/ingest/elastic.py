"""Elastic Security detection alerts (ECS documents with `kibana.alert.*`), whether the keys arrive dotted
and flat (`"kibana.alert.rule.name": …`, as the alerts API and exports write them), as nested objects, or
mixed, and whether bare or wrapped in a search hit (`{"_id": …, "_source": {…}}`).

Severity: `kibana.alert.severity` (low, medium, high, critical) when present; otherwise
`kibana.alert.risk_score` 0–100 with Elastic's default bands (<22 low, <48 medium, <74 high, else critical).
ATT&CK: `kibana.alert.rule.threat[]` (tactic, techniques, subtechniques) and the ECS `threat.*` fields.
Signers: `code_signature` of the process, its parent and the file; valid only when the chain is `trusted`.
"""

from __future__ import annotations

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
    severity_from_name,
    some,
)
from soctriage.service.ingest.fields import Fields
from soctriage.service.ingest.observables import Observables

_RISK_BANDS = (
    (22, SeverityId.LOW),
    (48, SeverityId.MEDIUM),
    (74, SeverityId.HIGH),
    (101, SeverityId.CRITICAL),
)
_RELATED = {"ip": "ip", "hosts": "hostname", "user": "user", "hash": "sha256"}


def is_elastic(record: dict[str, Any]) -> bool:
    doc = record.get("_source") if isinstance(record.get("_source"), dict) else record
    kibana = doc.get("kibana")
    return (isinstance(kibana, dict) and isinstance(kibana.get("alert"), dict)) or any(
        key.startswith("kibana.alert.") for key in doc
    )


def unflatten(record: dict[str, Any]) -> dict[str, Any]:
    """Nest dotted keys (`"host.name"` → host: {name}); a key that would clash with a value stays flat."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            value = unflatten(value)
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                node = None
                break
            node = child
        if node is None:
            out[key] = value
        elif isinstance(node.get(parts[-1]), dict) and isinstance(value, dict):
            node[parts[-1]].update(value)
        else:
            node[parts[-1]] = value
    return out


def normalize(record: dict[str, Any], raw: str) -> list[Alert]:
    hit_meta: dict[str, Any] = {}
    doc = record
    if isinstance(record.get("_source"), dict):
        doc = record["_source"]
        hit_meta = {key: value for key, value in record.items() if key != "_source"}
    f = Fields(unflatten(doc))
    vendor_id = f.text("kibana.alert.uuid") or (str(hit_meta.pop("_id")) if hit_meta.get("_id") else None)
    time = f.time("@timestamp", "kibana.alert.start", "kibana.alert.original_time")
    rule_name = f.text("kibana.alert.rule.name", "signal.rule.name", "rule.name")
    severity = severity_from_name(f.get("kibana.alert.severity"))
    if severity is None:
        severity = severity_from_bands(f.get("kibana.alert.risk_score"), _RISK_BANDS)
    else:
        f.mark("kibana.alert.risk_score")
    seen = Observables()
    for field, kind in _RELATED.items():
        for value in f.items(("related", field)):
            seen.typed(kind, value)  # type: ignore[arg-type]
        f.mark(("related", field))
    seen.url(f.get("url.full", "url.original"))
    parent = make_parent(
        name=f.get("process.parent.name"),
        pid=f.get("process.parent.pid"),
        cmdline=f.get("process.parent.command_line"),
        path=f.get("process.parent.executable"),
        sha256=f.get("process.parent.hash.sha256"),
        **_signature(f, "process.parent.code_signature"),
    )
    return [
        build_alert(
            fmt="elastic",
            vendor="Elastic",
            product="Elastic Security",
            vendor_alert_id=vendor_id,
            fields=f,
            raw=raw,
            time=time,
            title=rule_name,
            severity=severity,
            description=f.text("kibana.alert.reason", "kibana.alert.rule.description", "message"),
            rule=some(
                Rule, name=rule_name, uid=f.text("kibana.alert.rule.rule_id", "kibana.alert.rule.uuid")
            ),
            attacks=_rule_threats(f) + _ecs_threats(f),
            device=some(
                Device,
                hostname=f.text("host.name", "host.hostname"),
                ip=first_ip(f.get("host.ip")),
                os=f.text("host.os.full", "host.os.name"),
                uid=f.text("host.id"),
            ),
            user=some(User, name=f.text("user.name"), domain=f.text("user.domain"), uid=f.text("user.id")),
            process=make_process(
                name=f.get("process.name"),
                pid=f.get("process.pid"),
                cmdline=f.get("process.command_line"),
                path=f.get("process.executable"),
                sha256=f.get("process.hash.sha256"),
                **_signature(f, "process.code_signature"),
                parent=parent,
            ),
            file=make_file(
                name=f.get("file.name"),
                path=f.get("file.path"),
                sha256=f.get("file.hash.sha256"),
                sha1=f.get("file.hash.sha1"),
                md5=f.get("file.hash.md5"),
                **_signature(f, "file.code_signature"),
            ),
            network=some(
                Network,
                src_ip=first_ip(f.get("source.ip")),
                dst_ip=first_ip(f.get("destination.ip")),
                dst_port=int_or_none(f.get("destination.port")),
                domain=f.text("destination.domain", "dns.question.name", "url.domain"),
                url=f.text("url.full", "url.original"),
            ),
            observables=seen,
            extra_unmapped={"_hit": hit_meta} if hit_meta else None,
        )
    ]


def _signature(f: Fields, at: str) -> dict[str, Any]:
    """ECS `code_signature`: the signer, and whether the chain was verified as trusted. `valid` alone (the
    digest matches) is not enough: a self-made certificate with a vendor's name passes it."""
    exists = f.get(f"{at}.exists")
    trusted = f.get(f"{at}.trusted")
    status = f.text(f"{at}.status")
    f.mark(f"{at}.valid")
    if exists is False:
        return {"signer": None, "signature_valid": False}
    if isinstance(trusted, bool):
        verdict: bool | None = trusted and f.lookup(f"{at}.valid") is not False
    elif status:
        verdict = status.lower() == "trusted"
    else:
        verdict = False if f.lookup(f"{at}.valid") is False else None
    return {"signer": f.get(f"{at}.subject_name"), "signature_valid": verdict}


def _rule_threats(f: Fields) -> list[Any]:
    attacks: list[Any] = []
    for index, threat in enumerate(f.items("kibana.alert.rule.threat")):
        if not isinstance(threat, dict):
            continue
        base = ("kibana", "alert", "rule", "threat", index)
        tactic = threat.get("tactic") if isinstance(threat.get("tactic"), dict) else {}
        techniques = [item for item in threat.get("technique") or [] if isinstance(item, dict)]
        found = [make_attack(tactic.get("name"), tactic.get("id"))] if not techniques else []
        for technique in techniques:
            found.append(
                make_attack(tactic.get("name"), tactic.get("id"), technique.get("id"), technique.get("name"))
            )
            for sub in technique.get("subtechnique") or []:
                if isinstance(sub, dict):
                    found.append(
                        make_attack(tactic.get("name"), tactic.get("id"), sub.get("id"), sub.get("name"))
                    )
        if any(found):
            attacks.extend(found)
            f.mark(base)
    return attacks


def _ecs_threats(f: Fields) -> list[Any]:
    """ECS `threat.*` fields are parallel lists (or single values): pair them by position."""
    tactic_ids = f.items("threat.tactic.id")
    tactic_names = f.items("threat.tactic.name")

    def at(values: list[Any], index: int) -> Any:
        if len(values) == 1:
            return values[0]
        return values[index] if index < len(values) else None

    attacks = []
    for prefix in ("threat.technique", "threat.technique.subtechnique"):
        names = f.items(f"{prefix}.name")
        for i, technique in enumerate(f.items(f"{prefix}.id")):
            attacks.append(make_attack(at(tactic_names, i), at(tactic_ids, i), technique, at(names, i)))
    if not attacks:
        attacks = [make_attack(at(tactic_names, i), tid) for i, tid in enumerate(tactic_ids)]
    if any(attacks):
        f.mark("threat.technique", "threat.tactic")
    return attacks
