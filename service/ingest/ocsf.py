"""OCSF Detection Finding (class_uid 2004) passthrough: the Alert model is already aligned with it.

Required, as in the OCSF schema: `finding_info.uid` and `time`. Severity: `severity_id` as is (0–6, 99),
else the `severity` caption. ATT&CK: `finding_info.attacks[]` (and the Security Control profile's top-level
`attacks[]`); a sub-technique's id wins over its parent technique's.
Signers: a process's or file's `file.signature` (`certificate.subject`, valid when `state_id` is 1).
"""

from __future__ import annotations

from typing import Any

from soctriage.service.domain import Alert, Device, Network, ObservableType, Rule, SeverityId, User
from soctriage.service.ingest.common import (
    build_alert,
    first_ip,
    int_or_none,
    make_attack,
    make_file,
    make_parent,
    make_process,
    severity_from_name,
    some,
)
from soctriage.service.ingest.errors import IngestError
from soctriage.service.ingest.fields import Fields
from soctriage.service.ingest.observables import Observables, entity_observables

DETECTION_FINDING = 2004
# OCSF observable type_id → our observable type (hashes are classified by length).
_OBSERVABLE_TYPES: dict[int, ObservableType] = {
    1: "hostname",
    2: "ip",
    4: "user",
    5: "email",
    6: "url",
    7: "file",
    8: "sha256",
    9: "process",
    21: "user",
    24: "file",
}
_HASH_ALGORITHMS = {1: "md5", 2: "sha1", 3: "sha256"}


def class_uid(record: dict[str, Any]) -> int | None:
    return int_or_none(record.get("class_uid"))


def normalize(record: dict[str, Any], raw: str) -> list[Alert]:
    if class_uid(record) != DETECTION_FINDING:
        raise IngestError(
            f"OCSF class_uid {record.get('class_uid')} is not a Detection Finding ({DETECTION_FINDING})",
            "class_uid",
        )
    f = Fields(record)
    f.mark("class_uid")
    vendor_id = f.text("finding_info.uid")
    if vendor_id is None:
        raise IngestError("missing required field", "finding_info.uid")
    time = f.time("time", "time_dt", "finding_info.created_time")
    severity_id = int_or_none(f.lookup("severity_id"))
    if severity_id in set(SeverityId):
        f.mark("severity_id", "severity")
        severity: SeverityId | None = SeverityId(severity_id)
    else:
        severity = severity_from_name(f.get("severity"))
    seen = Observables()
    _observables(f, seen)
    evidence = _evidence(f, seen)
    title = f.text("finding_info.title", "message")
    actor_process = _process(f, "actor.process")
    return [
        build_alert(
            fmt="ocsf",
            vendor=f.text("metadata.product.vendor_name") or "OCSF",
            product=f.text("metadata.product.name") or "Detection Finding",
            vendor_alert_id=vendor_id,
            fields=f,
            raw=raw,
            time=time,
            title=title,
            severity=severity,
            description=f.text("finding_info.desc", "message"),
            rule=some(
                Rule,
                name=f.text("finding_info.analytic.name", "rule.name"),
                uid=f.text("finding_info.analytic.uid", "rule.uid"),
            ),
            attacks=_attacks(f, "finding_info.attacks") + _attacks(f, "attacks"),
            device=some(
                Device,
                hostname=f.text("device.hostname", "device.name"),
                ip=first_ip(f.get("device.ip")),
                os=f.text("device.os.name"),
                uid=f.text("device.uid"),
            ),
            user=some(
                User,
                name=f.text("actor.user.name"),
                domain=f.text("actor.user.domain"),
                uid=f.text("actor.user.uid"),
            ),
            process=actor_process or evidence.get("process"),
            file=evidence.get("file"),
            network=evidence.get("network"),
            observables=seen,
        )
    ]


def _process(f: Fields, at: str) -> Any:
    parent = _parent(f, f"{at}.parent_process")
    return make_process(**_process_values(f, at), parent=parent)


def _parent(f: Fields, at: str) -> Any:
    return make_parent(**_process_values(f, at))


def _process_values(f: Fields, at: str) -> dict[str, Any]:
    return {
        "name": f.get(f"{at}.name", f"{at}.file.name"),
        "pid": f.get(f"{at}.pid"),
        "cmdline": f.get(f"{at}.cmd_line"),
        "path": f.get(f"{at}.file.path"),
        "sha256": _hash(f, f"{at}.file.hashes", "sha256"),
        **_signature(f, f"{at}.file.signature"),
    }


# OCSF Digital Signature state_id: 1 Valid; 2 Expired, 3 Revoked, 4 Suspended, 5 Pending are not valid.
_SIGNATURE_STATES = {1: True, 2: False, 3: False, 4: False, 5: False}


def _signature(f: Fields, at: str) -> dict[str, Any]:
    """The signer (the certificate subject's common name) and whether the signature's state is Valid."""
    state = int_or_none(f.lookup(f"{at}.state_id"))
    valid = _SIGNATURE_STATES.get(state) if state is not None else None
    if valid is not None:
        f.mark(f"{at}.state_id", f"{at}.state")
    return {"signer": f.get(f"{at}.certificate.subject"), "signature_valid": valid}


def _hash(f: Fields, at: str, algorithm: str) -> str | None:
    for index, item in enumerate(f.items(at)):
        if not isinstance(item, dict):
            continue
        name = str(
            item.get("algorithm") or _HASH_ALGORITHMS.get(int_or_none(item.get("algorithm_id")) or 0, "")
        )
        if name.replace("-", "").lower() == algorithm:
            return f.get(f"{at}.{index}.value")
    return None


def _attacks(f: Fields, at: str) -> list[Any]:
    attacks = []
    for item in f.items(at):
        if not isinstance(item, dict):
            continue
        tactic = item.get("tactic") or (item.get("tactics") or [None])[0]
        tactic = tactic if isinstance(tactic, dict) else {}
        technique = item.get("sub_technique") or item.get("technique")
        technique = technique if isinstance(technique, dict) else {}
        attacks.append(
            make_attack(tactic.get("name"), tactic.get("uid"), technique.get("uid"), technique.get("name"))
        )
    if any(attacks):
        f.mark(at)
    return attacks


def _observables(f: Fields, seen: Observables) -> None:
    for index, item in enumerate(f.items("observables")):
        if not isinstance(item, dict):
            continue
        kind = _OBSERVABLE_TYPES.get(int_or_none(item.get("type_id")) or 0, "other")
        seen.typed(kind, item.get("value"))
        f.mark(("observables", index))


def _evidence(f: Fields, seen: Observables) -> dict[str, Any]:
    """The first evidence of each kind fills the Alert's slots; every evidence adds observables."""
    found: dict[str, Any] = {}
    for index, item in enumerate(f.items("evidences")):
        if not isinstance(item, dict):
            continue
        at = f"evidences.{index}"
        process = _process(f, f"{at}.process") if "process" in item else None
        file = (
            make_file(
                name=f.get(f"{at}.file.name"),
                path=f.get(f"{at}.file.path"),
                sha256=_hash(f, f"{at}.file.hashes", "sha256"),
                sha1=_hash(f, f"{at}.file.hashes", "sha1"),
                md5=_hash(f, f"{at}.file.hashes", "md5"),
                **_signature(f, f"{at}.file.signature"),
            )
            if "file" in item
            else None
        )
        network = some(
            Network,
            src_ip=first_ip(f.get(f"{at}.src_endpoint.ip")),
            dst_ip=first_ip(f.get(f"{at}.dst_endpoint.ip")),
            dst_port=int_or_none(f.get(f"{at}.dst_endpoint.port")),
            domain=f.text(f"{at}.dst_endpoint.domain", f"{at}.dst_endpoint.hostname", f"{at}.query.hostname"),
            url=f.text(f"{at}.url.url_string"),
        )
        seen.add("user", f.get(f"{at}.user.name"))
        seen.add("hostname", f.get(f"{at}.device.hostname"))
        entity_observables(seen, process=process, file=file, network=network)
        for key, value in (("process", process), ("file", file), ("network", network)):
            if value is not None:
                found.setdefault(key, value)
    return found
