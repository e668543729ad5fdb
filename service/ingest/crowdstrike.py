"""CrowdStrike Falcon: Alerts API v2 records (and their API page) and streaming-API detection events
(`EPPDetectionSummaryEvent`, legacy `DetectionSummaryEvent`, wrapped as {"metadata": …, "event": …}).

Severity: `severity_name`/`SeverityName` when present. Otherwise the Alerts API and EPP events score 0–100
(Falcon's bands: <20 informational, <40 low, <60 medium, <80 high, else critical) and the legacy event
scores 1–5 (1 informational … 5 critical).
ATT&CK: only ids matching the ATT&CK patterns are reported; Falcon's own CSTA/CST tactic and technique ids
("Machine Learning", "Adware/PUP") stay in `unmapped`.
"""

from __future__ import annotations

from typing import Any

from soctriage.service.domain import Alert, Device, Network, Rule, SeverityId, User
from soctriage.service.ingest.common import (
    build_alert,
    container_items,
    first_ip,
    int_or_none,
    join_path,
    make_attack,
    make_file,
    make_parent,
    make_process,
    severity_from_bands,
    severity_from_name,
    some,
    split_account,
)
from soctriage.service.ingest.errors import IngestError
from soctriage.service.ingest.fields import Fields
from soctriage.service.ingest.observables import Observables

_SCORE_BANDS = (
    (20, SeverityId.INFORMATIONAL),
    (40, SeverityId.LOW),
    (60, SeverityId.MEDIUM),
    (80, SeverityId.HIGH),
    (101, SeverityId.CRITICAL),
)
_LEGACY_LEVELS = {1: SeverityId.INFORMATIONAL, 2: SeverityId.LOW, 3: SeverityId.MEDIUM, 4: SeverityId.HIGH}
_IOC_TYPES = {"domain": "domain", "url": "url"}


def is_stream_event(record: dict[str, Any]) -> bool:
    metadata = record.get("metadata")
    return (
        isinstance(metadata, dict)
        and isinstance(record.get("event"), dict)
        and "detectionsummaryevent" in str(metadata.get("eventType", "")).lower()
    )


def normalize(record: dict[str, Any], raw: str) -> list[Alert]:
    if isinstance(record.get("resources"), list):  # an Alerts API response page
        return [
            alert
            for item, text in container_items(record, raw, "resources")
            for alert in normalize(item, text)
        ]
    if is_stream_event(record):
        return [_stream_event(record, raw)]
    return [_api_alert(record, raw)]


def _api_alert(record: dict[str, Any], raw: str) -> Alert:
    f = Fields(record)
    vendor_id = f.text("composite_id", "id")
    if vendor_id is None:
        raise IngestError("missing required field", "composite_id")
    time = f.time("timestamp", "created_timestamp", "context_timestamp", "crawled_timestamp")
    name = f.text("name")
    seen = Observables()
    _ioc(seen, f, "ioc_type", "ioc_value")
    for index, _ in enumerate(f.items("ioc_context")):
        _ioc(seen, f, ("ioc_context", index, "ioc_type"), ("ioc_context", index, "ioc_value"))
    for index, _ in enumerate(f.items("quarantined_files")):
        seen.hash(f.get(("quarantined_files", index, "sha256")))

    is_scan = f.lookup("type") == "ods"  # an on-demand scan hit names a file at rest, not a running process
    parent = make_parent(
        name=f.get("parent_details.filename"),
        pid=f.get("parent_details.local_process_id"),
        cmdline=f.get("parent_details.cmdline"),
        path=f.get("parent_details.filepath"),
        sha256=f.get("parent_details.sha256"),
    )
    process = make_process(
        name=None if is_scan else f.get("filename"),
        pid=f.get("local_process_id"),
        cmdline=f.get("cmdline"),
        path=None if is_scan else f.get("filepath"),
        sha256=None if is_scan else f.get("sha256"),
        parent=parent,
    )
    file = make_file(
        name=f.get("filename"),
        path=f.get("filepath"),
        sha256=f.get("sha256"),
        sha1=f.get("sha1"),
        md5=f.get("md5"),
    )
    domain, account = split_account(f.text("user_name", "source_account_name"))
    user = some(
        User,
        name=account,
        domain=domain or f.text("logon_domain", "source_account_domain"),
        uid=f.text("user_id", "source_account_object_sid"),
    )
    device = some(
        Device,
        hostname=f.text("device.hostname", "source_endpoint_host_name"),
        ip=first_ip(f.get("device.local_ip", "source_endpoint_ip_address", "source_endpoint_address_ip4")),
        os=f.text("device.os_version", "device.platform_name", "platform"),
        uid=f.text("device.device_id", "agent_id"),
    )
    for path in ("target_endpoint_host_name", "target_domain_controller_host_name"):
        seen.add("hostname", f.get(path))
    seen.ip(f.get("device.external_ip"))
    return build_alert(
        fmt="crowdstrike",
        vendor="CrowdStrike",
        product=_first(f.get("source_products")) or "Falcon",
        vendor_alert_id=vendor_id,
        fields=f,
        raw=raw,
        time=time,
        title=f.text("display_name") or name,
        severity=_severity(f, "severity_name", "severity", _SCORE_BANDS),
        description=f.text("description"),
        rule=some(Rule, name=name, uid=f.text("pattern_id")),
        attacks=[_attack(f, "tactic", "tactic_id", "technique", "technique_id")],
        device=device,
        user=user,
        process=process,
        file=file,
        network=_network(f, seen, "network_accesses", "local_address", "remote_address", "remote_port"),
        observables=seen,
    )


def _stream_event(record: dict[str, Any], raw: str) -> Alert:
    f = Fields(record)
    vendor_id = f.text("event.CompositeId", "event.DetectId")
    if vendor_id is None:
        raise IngestError("missing required field", "event.CompositeId")
    time = f.time("metadata.eventCreationTime", "event.ContextTimeStamp", "event.ProcessStartTime")
    legacy = str(f.lookup("metadata.eventType")).lower() == "detectionsummaryevent"
    name = f.text("event.IOARuleName", "event.Name", "event.DetectName")
    seen = Observables()
    _ioc(seen, f, "event.IOCType", "event.IOCValue")

    file_name = f.text("event.FileName")
    path = join_path(f.text("event.FilePath"), file_name)
    is_scan = f.lookup("event.Type") == "ods"  # an on-demand scan hit names a file at rest, not a process
    parent = make_parent(
        name=f.get("event.ParentImageFileName"),
        pid=f.get("event.ParentProcessId"),
        cmdline=f.get("event.ParentCommandLine"),
        path=f.get("event.ParentImageFilePath"),
    )
    process = make_process(
        name=None if is_scan else file_name,
        pid=f.get("event.ProcessId"),
        cmdline=f.get("event.CommandLine"),
        path=None if is_scan else path,
        sha256=None if is_scan else f.get("event.SHA256String"),
        parent=parent,
    )
    file = make_file(
        name=file_name,
        path=path,
        sha256=f.get("event.SHA256String"),
        sha1=f.get("event.SHA1String"),
        md5=f.get("event.MD5String"),
    )
    domain, account = split_account(f.text("event.UserName"))
    attacks = [_attack(f, "event.Tactic", "event.TacticId", "event.Technique", "event.TechniqueId")]
    for index, _ in enumerate(f.items("event.MitreAttack")):
        prefix = ("event", "MitreAttack", index)
        attacks.append(
            _attack(
                f,
                (*prefix, "Tactic"),
                (*prefix, "TacticID"),
                (*prefix, "Technique"),
                (*prefix, "TechniqueID"),
            )
        )
    return build_alert(
        fmt="crowdstrike",
        vendor="CrowdStrike",
        product=f.text("event.SourceProducts") or "Falcon",
        vendor_alert_id=vendor_id,
        fields=f,
        raw=raw,
        time=time,
        title=name,
        severity=_severity(f, "event.SeverityName", "event.Severity", None if legacy else _SCORE_BANDS),
        description=f.text("event.Description", "event.DetectDescription"),
        rule=some(Rule, name=name, uid=f.text("event.IOARuleInstanceID", "event.PatternId")),
        attacks=attacks,
        device=some(
            Device,
            hostname=f.text("event.Hostname", "event.ComputerName"),
            ip=first_ip(f.get("event.LocalIP")),
            os=f.text("event.Platform"),
            uid=f.text("event.AgentId", "event.SensorId"),
        ),
        user=some(
            User, name=account, domain=domain or f.text("event.LogonDomain"), uid=f.text("event.UserId")
        ),
        process=process,
        file=file,
        network=_network(f, seen, "event.NetworkAccesses", "LocalAddress", "RemoteAddress", "RemotePort"),
        observables=seen,
    )


def _severity(f: Fields, name_path: str, score_path: str, bands: Any) -> SeverityId | None:
    by_name = severity_from_name(f.lookup(name_path))
    if by_name is not None:
        f.mark(name_path, score_path)  # the score is the same judgement, and stays readable in raw
        return by_name
    score = f.get(score_path)
    if bands is not None:
        return severity_from_bands(score, bands)
    level = int_or_none(score)
    if level is None:
        return None
    return _LEGACY_LEVELS.get(level, SeverityId.CRITICAL if level >= 5 else SeverityId.UNKNOWN)


def _attack(f: Fields, tactic: Any, tactic_id: Any, technique: Any, technique_id: Any) -> Any:
    attack = make_attack(f.lookup(tactic), f.lookup(tactic_id), f.lookup(technique_id), f.lookup(technique))
    if attack is not None:  # only real ATT&CK ids are mapped; pseudo-ids remain in unmapped
        f.mark(tactic, tactic_id, technique, technique_id)
    return attack


def _ioc(seen: Observables, f: Fields, type_path: Any, value_path: Any) -> None:
    kind = str(f.lookup(type_path) or "").lower()
    value = f.lookup(value_path)
    if not isinstance(value, str):
        return
    if kind.startswith("hash"):
        seen.hash(value)
    elif kind.startswith("ipv"):
        seen.ip(value)
    elif kind in _IOC_TYPES:
        seen.add(_IOC_TYPES[kind], value)  # type: ignore[arg-type]
    else:
        return
    f.mark(type_path, value_path)


def _network(f: Fields, seen: Observables, path: str, local: str, remote: str, port: str) -> Network | None:
    """The first connection fills `network`; every remote address becomes an observable."""
    accesses = f.items(path)
    if not accesses:
        return None
    base = tuple(path.split("."))
    for index in range(1, len(accesses)):
        seen.ip(f.get((*base, index, remote)))
    return some(
        Network,
        src_ip=first_ip(f.get((*base, 0, local))),
        dst_ip=first_ip(f.get((*base, 0, remote))),
        dst_port=int_or_none(f.get((*base, 0, port))),
    )


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        return str(value[0]) if value else None
    return str(value) if value else None
