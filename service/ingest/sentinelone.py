"""SentinelOne: cloud-detection/STAR alerts (`alertInfo` + `ruleInfo`), threats (`threatInfo`), and their
API pages (`{"data": [...], "pagination": …}`).

Severity: alerts carry the rule's severity name (Low … Critical), mapped one to one. Threats carry no
severity, only the engine's confidence: `malicious` → High, `suspicious` → Medium, anything else → Unknown.
ATT&CK: threat indicators list tactics with technique ids; only ids matching the ATT&CK pattern are kept.
Signers: an alert's `fileSignerIdentity` of the source process and its parent (SentinelOne does not say
whether it was verified); a threat's `publisherName` with `isValidCertificate`.
"""

from __future__ import annotations

from typing import Any

from soctriage.service.domain import Alert, Device, Network, Rule, SeverityId, User
from soctriage.service.ingest.common import (
    build_alert,
    container_items,
    first_ip,
    int_or_none,
    make_attack,
    make_file,
    make_parent,
    make_process,
    severity_from_name,
    some,
    split_account,
)
from soctriage.service.ingest.errors import IngestError
from soctriage.service.ingest.fields import Fields
from soctriage.service.ingest.observables import Observables

_CONFIDENCE = {"malicious": SeverityId.HIGH, "suspicious": SeverityId.MEDIUM}
_TI_TYPES = {
    "ipv4": "ip",
    "ipv6": "ip",
    "dns": "domain",
    "url": "url",
    "sha256": "sha256",
    "sha1": "sha1",
    "md5": "md5",
}


def normalize(record: dict[str, Any], raw: str) -> list[Alert]:
    if isinstance(record.get("data"), list):
        return [
            alert for item, text in container_items(record, raw, "data") for alert in normalize(item, text)
        ]
    if isinstance(record.get("threatInfo"), dict):
        return [_threat(record, raw)]
    return [_alert(record, raw)]


def _agent(f: Fields) -> Device | None:
    return some(
        Device,
        hostname=f.text(
            "agentRealtimeInfo.agentComputerName", "agentDetectionInfo.name", "agentRealtimeInfo.name"
        ),
        ip=first_ip(f.get("agentDetectionInfo.agentIpV4", "alertInfo.srcMachineIp")),
        os=f.text(
            "agentDetectionInfo.osName", "agentDetectionInfo.agentOsName", "agentRealtimeInfo.agentOsName"
        ),
        uid=f.text("agentDetectionInfo.uuid", "agentDetectionInfo.agentUuid", "agentRealtimeInfo.agentUuid"),
    )


def _process(f: Fields, at: str) -> dict[str, Any]:
    return {
        "name": f.get(f"{at}.name"),
        "pid": f.get(f"{at}.pid"),
        "cmdline": f.get(f"{at}.commandline"),
        "path": f.get(f"{at}.filePath"),
        "sha256": f.get(f"{at}.fileHashSha256"),
        "signer": f.get(f"{at}.fileSignerIdentity"),
    }


def _alert(record: dict[str, Any], raw: str) -> Alert:
    f = Fields(record)
    vendor_id = f.text("alertInfo.alertId")
    if vendor_id is None:
        raise IngestError("missing required field", "alertInfo.alertId")
    time = f.time("alertInfo.createdAt", "alertInfo.reportedAt")
    seen = Observables()
    ti_type = str(f.lookup("alertInfo.tiIndicatorType") or "").lower()
    if ti_type in _TI_TYPES:
        seen.typed(_TI_TYPES[ti_type], f.get("alertInfo.tiIndicatorValue"))  # type: ignore[arg-type]
        f.mark("alertInfo.tiIndicatorType")
    seen.hash(f.get("alertInfo.moduleSha1"))
    parent = make_parent(**_process(f, "sourceParentProcessInfo"))
    domain, account = split_account(f.text("sourceProcessInfo.user", "alertInfo.loginsUserName"))
    rule_name = f.text("ruleInfo.name")
    return build_alert(
        fmt="sentinelone",
        vendor="SentinelOne",
        product="Singularity",
        vendor_alert_id=vendor_id,
        fields=f,
        raw=raw,
        time=time,
        title=rule_name,
        severity=severity_from_name(f.get("ruleInfo.severity")),
        description=f.text("ruleInfo.description"),
        rule=some(Rule, name=rule_name, uid=f.text("ruleInfo.id")),
        device=_agent(f),
        user=some(User, name=account, domain=domain or f.text("alertInfo.loginAccountDomain"), uid=None),
        process=make_process(**_process(f, "sourceProcessInfo"), parent=parent),
        file=make_file(
            path=f.get("targetProcessInfo.tgtFilePath"),
            sha256=f.get("targetProcessInfo.tgtFileHashSha256"),
            sha1=f.get("targetProcessInfo.tgtFileHashSha1"),
            # "signed" says nothing about the chain; only "unsigned" is a verdict.
            signature_valid=False if f.lookup("targetProcessInfo.tgtFileIsSigned") == "unsigned" else None,
        ),
        network=some(
            Network,
            src_ip=first_ip(f.get("alertInfo.srcIp")),
            dst_ip=first_ip(f.get("alertInfo.dstIp")),
            dst_port=int_or_none(f.get("alertInfo.dstPort")),
            domain=f.text("alertInfo.dnsRequest"),
            url=None,
        ),
        observables=seen,
    )


def _threat(record: dict[str, Any], raw: str) -> Alert:
    f = Fields(record)
    vendor_id = f.text("id", "threatInfo.threatId")
    if vendor_id is None:
        raise IngestError("missing required field", "id")
    time = f.time("threatInfo.createdAt", "threatInfo.identifiedAt")
    name = f.text("threatInfo.threatName")
    classification = f.text("threatInfo.classification")
    confidence = str(f.get("threatInfo.confidenceLevel") or "").lower()
    domain, account = split_account(
        f.text("threatInfo.processUser", "agentDetectionInfo.agentLastLoggedInUserName")
    )
    signature = _threat_signature(f)
    return build_alert(
        fmt="sentinelone",
        vendor="SentinelOne",
        product="Singularity",
        vendor_alert_id=vendor_id,
        fields=f,
        raw=raw,
        time=time,
        title=f"{classification}: {name}" if classification and name else name or classification,
        severity=_CONFIDENCE.get(confidence, SeverityId.UNKNOWN),
        description=_indicator_text(f),
        rule=some(
            Rule,
            name=f.text(("threatInfo", "detectionEngines", 0, "title")),
            uid=f.text(("threatInfo", "detectionEngines", 0, "key")),
        ),
        attacks=_threat_attacks(f),
        device=_agent(f),
        user=some(User, name=account, domain=domain, uid=f.text("threatInfo.initiatingUserId")),
        process=_threat_process(f, signature),
        file=make_file(
            path=f.get("threatInfo.filePath"),
            sha256=f.get("threatInfo.sha256"),
            sha1=f.get("threatInfo.sha1"),
            md5=f.get("threatInfo.md5"),
            **signature,
        ),
    )


def _indicator_text(f: Fields) -> str | None:
    """The engine's indicator descriptions are the closest thing a threat has to a description."""
    lines = []
    for index, _ in enumerate(f.items("indicators")):
        text = f.text(("indicators", index, "description"))
        if text:
            lines.append(text)
    return "; ".join(dict.fromkeys(lines)) or None


def _threat_attacks(f: Fields) -> list[Any]:
    attacks = []
    for index, indicator in enumerate(f.items("indicators")):
        if not isinstance(indicator, dict):
            continue
        for t_index, tactic in enumerate(indicator.get("tactics") or []):
            if not isinstance(tactic, dict):
                continue
            at = ("indicators", index, "tactics", t_index)
            for k_index, technique in enumerate(tactic.get("techniques") or []):
                if not isinstance(technique, dict):
                    continue
                attack = make_attack(tactic=tactic.get("name"), technique_id=technique.get("name"))
                if attack is not None and attack.technique_id:
                    attacks.append(attack)
                    f.mark((*at, "techniques", k_index, "name"), (*at, "name"))
    return attacks


def _threat_signature(f: Fields) -> dict[str, Any]:
    """The threat file's publisher and whether its certificate checked out (`isValidCertificate`)."""
    valid = f.get("threatInfo.isValidCertificate")
    if f.lookup("threatInfo.fileVerificationType") == "NotSigned":
        f.mark("threatInfo.fileVerificationType")
        valid = False
    return {
        "signer": f.get("threatInfo.publisherName"),
        "signature_valid": valid if isinstance(valid, bool) else None,
    }


def _threat_process(f: Fields, signature: dict[str, Any]) -> Any:
    """A behavioural threat names the malicious process by its file and arguments, and the process that
    started it as originator; a static (file) threat only names the originator that wrote the file."""
    arguments = f.get("threatInfo.maliciousProcessArguments")
    originator = f.get("threatInfo.originatorProcess")
    if not arguments:
        return make_process(name=originator)
    return make_process(
        path=f.lookup("threatInfo.filePath"),
        cmdline=arguments,
        parent=make_parent(name=originator),
        **signature,
    )
