"""Microsoft Defender: the Defender for Endpoint alerts API (legacy rows, one per evidence entity, and its
`{"value": [...]}` pages), Microsoft Graph security alerts v2, and Graph incidents (whose `alerts` may be a
single object instead of an array).

Severity: the vendor's own names (informational, low, medium, high) map one to one onto OCSF.
Signers: Graph `fileDetails.signer` (image, parent image, file). Graph does not say whether the signature
was verified, so `signature_valid` stays unknown.
ATT&CK: `mitreTechniques` ids; `category` is the kill-chain tactic when it names an ATT&CK tactic
("DefenseEvasion"), otherwise ("Malware") it stays in `unmapped`.
"""

from __future__ import annotations

from typing import Any

from soctriage.service.domain import Alert, Device, Network, Rule, User
from soctriage.service.ingest.common import (
    build_alert,
    container_items,
    first_ip,
    join_path,
    make_attack,
    make_file,
    make_parent,
    make_process,
    severity_from_name,
    some,
    tactic_id_for,
)
from soctriage.service.ingest.errors import IngestError
from soctriage.service.ingest.fields import Fields
from soctriage.service.ingest.observables import Observables

_GRAPH = "#microsoft.graph.security."
_PRODUCTS = {
    "microsoftDefenderForEndpoint": "Defender for Endpoint",
    "microsoftDefenderForIdentity": "Defender for Identity",
    "microsoftDefenderForOffice365": "Defender for Office 365",
    "microsoftDefenderForCloudApps": "Defender for Cloud Apps",
    "microsoft365Defender": "Microsoft 365 Defender",
}


def is_incident(record: dict[str, Any]) -> bool:
    kind = str(record.get("@odata.type", ""))
    return kind == _GRAPH + "incident" or ("alerts" in record and "incidentWebUrl" in record)


def normalize(record: dict[str, Any], raw: str) -> list[Alert]:
    if isinstance(record.get("value"), list):  # an API page: zero or more alerts
        return [
            alert for item, text in container_items(record, raw, "value") for alert in normalize(item, text)
        ]
    if is_incident(record):
        return _incident(record, raw)
    return [_alert(record, raw)]


def _incident(record: dict[str, Any], raw: str) -> list[Alert]:
    items = container_items(record, raw, "alerts")
    if not items:
        # An incident without alert details is still a detection: it becomes an alert of its own.
        return [_alert(record, raw, incident_id=f"incident-{record.get('id')}" if record.get("id") else None)]
    context = {key: value for key, value in record.items() if key != "alerts" and value is not None}
    return [_alert(item, text, extra={"incident": context}) for item, text in items]


def _alert(
    record: dict[str, Any], raw: str, incident_id: str | None = None, extra: dict | None = None
) -> Alert:
    f = Fields(record)
    vendor_id = incident_id or f.text("id", "providerAlertId")
    if vendor_id is None:
        raise IngestError("missing required field", "id")
    time = f.time("createdDateTime", "alertCreationTime", "firstActivityDateTime", "firstEventTime")
    seen = Observables()
    parts: dict[str, Any] = {}
    if isinstance(f.lookup("evidence"), list):
        _graph_evidence(f, seen, parts)
    elif isinstance(f.lookup("evidence"), dict):
        _legacy_evidence(f, seen, parts)

    user = _merge_users(
        some(User, name=f.text("relatedUser.userName"), domain=f.text("relatedUser.domainName"), uid=None),
        parts.get("user"),
        seen,
    )
    device = parts.get("device") or some(
        Device, hostname=f.text("computerDnsName"), ip=None, os=None, uid=f.text("machineId")
    )
    # Microsoft's `category` is the alert's kill-chain tactic, so it is the tactic of its techniques too.
    tactic = f.get("category") if tactic_id_for(f.lookup("category")) else None
    attacks = [make_attack(tactic=tactic, technique_id=item) for item in f.items("mitreTechniques")]
    if any(attacks):
        f.mark("mitreTechniques")
    elif tactic:
        attacks = [make_attack(tactic=tactic)]
    title = f.text("title", "displayName")
    service = f.text("serviceSource")
    return build_alert(
        fmt="defender",
        vendor="Microsoft",
        product=_PRODUCTS.get(service or "", service or "Defender for Endpoint"),
        vendor_alert_id=vendor_id,
        fields=f,
        raw=raw,
        time=time,
        title=title,
        severity=severity_from_name(f.get("severity")),
        description=f.text("description"),
        rule=some(Rule, name=title, uid=f.text("detectorId")) if f.lookup("detectorId") else None,
        attacks=attacks,
        device=device,
        user=user,
        process=parts.get("process"),
        file=parts.get("file"),
        network=some(
            Network, src_ip=None, dst_ip=parts.get("ip"), dst_port=None, domain=None, url=parts.get("url")
        ),
        observables=seen,
        extra_unmapped=extra,
    )


def _legacy_evidence(f: Fields, seen: Observables, parts: dict[str, Any]) -> None:
    """A legacy row carries one evidence entity; rows of the same alert share its id and so its Alert.id."""
    kind = str(f.lookup("evidence.entityType") or "").lower()
    name = f.text("evidence.fileName")
    path = join_path(f.text("evidence.filePath"), name)
    if kind == "process":
        parts["process"] = make_process(
            name=name,
            pid=f.get("evidence.processId"),
            cmdline=f.get("evidence.processCommandLine"),
            path=path,
            sha256=f.get("evidence.sha256"),
            parent=make_parent(pid=f.get("evidence.parentProcessId")),
        )
    if kind in ("process", "file"):
        parts["file"] = make_file(
            name=name, path=path, sha256=f.get("evidence.sha256"), sha1=f.get("evidence.sha1")
        )
    if kind == "user" or f.lookup("evidence.accountName"):
        parts["user"] = some(
            User,
            name=f.text("evidence.accountName", "evidence.userPrincipalName"),
            domain=f.text("evidence.domainName"),
            uid=f.text("evidence.userSid", "evidence.aadUserId"),
        )
    parts["ip"] = first_ip(f.get("evidence.ipAddress"))
    parts["url"] = f.text("evidence.url")
    if parts["url"] or parts["ip"] or kind in ("process", "file", "user"):
        f.mark("evidence.entityType")


def _graph_evidence(f: Fields, seen: Observables, parts: dict[str, Any]) -> None:
    """Typed Graph evidence: the first of each kind fills the Alert slots, the rest become observables."""
    for index, item in enumerate(f.items("evidence")):
        if not isinstance(item, dict):
            continue
        kind = str(item.get("@odata.type", "")).removeprefix(_GRAPH)
        at = ("evidence", index)
        if kind == "deviceEvidence":
            device = some(
                Device,
                hostname=f.text((*at, "deviceDnsName"), (*at, "hostName")),
                ip=first_ip(f.get((*at, "ipInterfaces"))),
                os=f.text((*at, "osPlatform")),
                uid=f.text((*at, "mdeDeviceId"), (*at, "azureAdDeviceId")),
            )
            _fill(parts, "device", device)
            seen.add("hostname", device.hostname if device else None)
        elif kind == "processEvidence":
            image = (*at, "imageFile")
            parent_image = (*at, "parentProcessImageFile")
            process = make_process(
                name=f.get((*image, "fileName")),
                pid=f.get((*at, "processId")),
                cmdline=f.get((*at, "processCommandLine")),
                path=join_path(f.text((*image, "filePath")), f.text((*image, "fileName"))),
                sha256=f.get((*image, "sha256")),
                signer=f.get((*image, "signer")),
                parent=make_parent(
                    name=f.get((*parent_image, "fileName")),
                    pid=f.get((*at, "parentProcessId")),
                    path=join_path(f.text((*parent_image, "filePath")), f.text((*parent_image, "fileName"))),
                    sha256=f.get((*parent_image, "sha256")),
                    signer=f.get((*parent_image, "signer")),
                ),
            )
            _fill(parts, "process", process)
            seen.hash(process.sha256 if process else None)
            _account(f, (*at, "userAccount"), parts)
        elif kind == "fileEvidence":
            details = (*at, "fileDetails")
            file = make_file(
                name=f.get((*details, "fileName")),
                path=join_path(f.text((*details, "filePath")), f.text((*details, "fileName"))),
                sha256=f.get((*details, "sha256")),
                sha1=f.get((*details, "sha1")),
                md5=f.get((*details, "md5")),
                signer=f.get((*details, "signer")),
            )
            _fill(parts, "file", file)
            for digest in (file.sha256, file.sha1, file.md5) if file else ():
                seen.hash(digest)
        elif kind == "userEvidence":
            _account(f, (*at, "userAccount"), parts)
        elif kind == "ipEvidence":
            _fill(parts, "ip", first_ip(f.get((*at, "ipAddress"))))
            seen.ip(f.lookup((*at, "ipAddress")))
        elif kind == "urlEvidence":
            _fill(parts, "url", f.text((*at, "url")))
            seen.url(f.lookup((*at, "url")))
        else:
            continue
        f.mark((*at, "@odata.type"))


def _account(f: Fields, at: tuple, parts: dict[str, Any]) -> None:
    user = some(
        User,
        name=f.text((*at, "accountName"), (*at, "userPrincipalName")),
        domain=f.text((*at, "domainName")),
        uid=f.text((*at, "userSid"), (*at, "azureAdUserId")),
    )
    _fill(parts, "user", user)


def _fill(parts: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and parts.get(key) is None:
        parts[key] = value


def _merge_users(related: User | None, evidence: User | None, seen: Observables) -> User | None:
    """The alert's related user, completed with the evidence entity's SID when both name the same account."""
    if related is None or evidence is None:
        return related or evidence
    if (related.name or "").lower() == (evidence.name or "").lower():
        return related.model_copy(update={"uid": evidence.uid, "domain": related.domain or evidence.domain})
    seen.add("user", evidence.name)
    return related
