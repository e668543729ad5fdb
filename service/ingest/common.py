"""Building blocks every normalizer shares: severity parsing, ATT&CK validation, small value helpers, the
entities, and the one place an `Alert` is assembled. Field access is fields.py; observables, observables.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from soctriage.service.domain import (
    Alert,
    AlertFormat,
    Attack,
    Device,
    FileInfo,
    Network,
    ParentProcess,
    Process,
    Rule,
    Severity,
    SeverityId,
    Source,
    User,
    alert_id,
    canonical_json,
)
from soctriage.service.ingest.errors import IngestError
from soctriage.service.ingest.fields import Fields, to_int
from soctriage.service.ingest.limits import MAX_SOURCE_NAME_CHARS, MAX_VENDOR_ALERT_ID_CHARS
from soctriage.service.ingest.observables import Observables, entity_observables, real_hash, valid_ip
from soctriage.service.ingest.reader import member_texts
from soctriage.service.ingest.verdicts import vendor_verdict

# --- severity ------------------------------------------------------------------------------------------

_SEVERITY_NAMES = {
    "unknown": SeverityId.UNKNOWN,
    "unspecified": SeverityId.UNKNOWN,
    "informational": SeverityId.INFORMATIONAL,
    "info": SeverityId.INFORMATIONAL,
    "low": SeverityId.LOW,
    "medium": SeverityId.MEDIUM,
    "moderate": SeverityId.MEDIUM,
    "high": SeverityId.HIGH,
    "critical": SeverityId.CRITICAL,
    "fatal": SeverityId.FATAL,
}


def severity_from_name(name: Any) -> SeverityId | None:
    return _SEVERITY_NAMES.get(str(name).strip().lower()) if name is not None else None


def severity_from_bands(score: Any, bands: Iterable[tuple[float, SeverityId]]) -> SeverityId | None:
    """`bands` are (upper bound exclusive, severity) in ascending order; the last band takes the rest."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        return None
    chosen = None
    for upper, severity in bands:
        chosen = severity
        if value < upper:
            break
    return chosen


# --- ATT&CK --------------------------------------------------------------------------------------------

TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
TACTIC_ID = re.compile(r"^TA\d{4}$")
TACTICS: dict[str, str] = {
    "TA0043": "Reconnaissance",
    "TA0042": "Resource Development",
    "TA0001": "Initial Access",
    "TA0002": "Execution",
    "TA0003": "Persistence",
    "TA0004": "Privilege Escalation",
    "TA0005": "Defense Evasion",
    "TA0006": "Credential Access",
    "TA0007": "Discovery",
    "TA0008": "Lateral Movement",
    "TA0009": "Collection",
    "TA0011": "Command and Control",
    "TA0010": "Exfiltration",
    "TA0040": "Impact",
}
# "Defense Evasion", "DefenseEvasion" and "defense-evasion" all reduce to the same key.
_TACTIC_BY_KEY = {re.sub(r"[^a-z]", "", name.lower()): tid for tid, name in TACTICS.items()}


def tactic_id_for(name: Any) -> str | None:
    return _TACTIC_BY_KEY.get(re.sub(r"[^a-z]", "", str(name).lower())) if name else None


def make_attack(
    tactic: Any = None, tactic_id: Any = None, technique_id: Any = None, technique_name: Any = None
) -> Attack | None:
    """An ATT&CK entry, or None when the vendor gave no valid ATT&CK id or tactic name.

    Vendor pseudo-ids (CrowdStrike CST0001/CSTA0004, ...) fail the id patterns and are never reported.
    """
    technique = str(technique_id).strip().upper() if technique_id else None
    if technique and not TECHNIQUE_ID.match(technique):
        technique = None
    tid = str(tactic_id).strip().upper() if tactic_id else None
    if tid and not TACTIC_ID.match(tid):
        tid = None
    tid = tid or tactic_id_for(tactic)
    if technique is None and tid is None:
        return None
    tactic_name = TACTICS.get(tid, str(tactic).strip() if tactic else None) if tid else None
    name = str(technique_name).strip() if technique and technique_name else None
    return Attack(tactic=tactic_name, tactic_id=tid, technique_id=technique, technique_name=name or None)


# --- small value helpers -------------------------------------------------------------------------------


def first_ip(value: Any) -> str | None:
    """The first valid address of a field that may be a list or a comma-separated string."""
    candidates = value if isinstance(value, list) else str(value or "").split(",")
    for candidate in candidates:
        ip = valid_ip(candidate)
        if ip:
            return ip
    return None


def split_account(value: Any) -> tuple[str | None, str | None]:
    r"""(domain, name) from `DOMAIN\user` (Wazuh doubles the backslash) or a bare name."""
    if not value:
        return None, None
    parts = [part for part in re.split(r"\\+", str(value).strip()) if part]
    if len(parts) >= 2:
        return parts[0], parts[-1]
    return None, parts[0] if parts else None


def basename(path: str | None) -> str | None:
    if not path:
        return None
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1] or None


def join_path(folder: str | None, name: str | None) -> str | None:
    """Join a folder and a file name given separately; a folder that already ends in the name is kept."""
    if not folder:
        return None
    if not name or basename(folder) == name:
        return folder
    separator = "\\" if "\\" in folder else "/"
    return folder.rstrip("\\/") + separator + name


def some(model: type[BaseModel], **values: Any) -> Any:
    """The model built from `values`, or None when every value is empty."""
    if all(value is None for value in values.values()):
        return None
    return model(**values)


def int_or_none(value: Any) -> int | None:
    number = to_int(value)
    return number if number is not None and 0 <= number < 2**63 else None


# --- assembling the Alert ------------------------------------------------------------------------------


def derived_id(record: dict[str, Any], raw: str) -> str:
    """A stable id for a vendor alert that carries none: the sha256 of the canonical record."""
    try:
        body = canonical_json(record)
    except ValueError:  # NaN/Infinity survive json.loads but not canonical JSON; the raw text is stable too
        body = raw
    return "sha256:" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def build_alert(
    *,
    fmt: AlertFormat,
    vendor: str,
    product: str,
    vendor_alert_id: str | None,
    fields: Fields,
    raw: str,
    time: datetime,
    title: str | None,
    severity: SeverityId | None,
    description: str | None = None,
    rule: Rule | None = None,
    attacks: Iterable[Attack | None] = (),
    device: Device | None = None,
    user: User | None = None,
    process: Process | None = None,
    file: FileInfo | None = None,
    network: Network | None = None,
    observables: Observables | None = None,
    extra_unmapped: dict[str, Any] | None = None,
) -> Alert:
    """The one place an Alert is made: ids, observables from the mapped entities, and the unmapped rest."""
    vendor_id = vendor_alert_id or derived_id(fields.record, raw)
    if len(vendor_id) > MAX_VENDOR_ALERT_ID_CHARS:
        raise IngestError(
            f"the vendor alert id is {len(vendor_id)} characters, limit is {MAX_VENDOR_ALERT_ID_CHARS}"
        )
    for name, value in (("vendor", vendor), ("product", product)):
        if len(value) > MAX_SOURCE_NAME_CHARS:
            raise IngestError(f"the {name} name is {len(value)} characters, limit is {MAX_SOURCE_NAME_CHARS}")
    seen = observables or Observables()
    entity_observables(seen, device=device, user=user, process=process, file=file, network=network)
    verdict = vendor_verdict(fmt, fields, process)  # before `unmapped`: the field it reads is mapped
    unmapped = fields.unmapped()
    if extra_unmapped:
        unmapped.update(extra_unmapped)
    try:
        return Alert(
            id=alert_id(fmt, vendor_id),
            source=Source(vendor=vendor, product=product, format=fmt, vendor_alert_id=vendor_id),
            time=time,
            severity=Severity.of(severity if severity is not None else SeverityId.UNKNOWN),
            title=title or (rule.name if rule and rule.name else None) or f"{vendor} {product} alert",
            description=description,
            rule=rule,
            attacks=tuple(dict.fromkeys(attack for attack in attacks if attack is not None)),
            device=device,
            user=user,
            process=process,
            file=file,
            network=network,
            observables=seen.result(),
            vendor_verdict=verdict,
            raw=raw,
            unmapped=unmapped,
        )
    except ValidationError as exc:  # a mapping bug or a value of the wrong kind: reject, never crash
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise IngestError(f"value does not fit the Alert model: {error['msg']}", field) from exc


def make_process(
    *,
    name: Any = None,
    pid: Any = None,
    cmdline: Any = None,
    path: Any = None,
    sha256: Any = None,
    signer: Any = None,
    signature_valid: bool | None = None,
    parent: ParentProcess | None = None,
) -> Process | None:
    path_text = str(path).strip() if path else None
    values = {
        "name": (str(name).strip() if name else None) or basename(path_text) or _image_of(cmdline),
        "pid": int_or_none(pid),
        "cmdline": str(cmdline) if cmdline else None,
        "path": path_text,
        "sha256": _sized_hash(sha256, 64),
        "signer": signer_name(signer),
    }
    if all(value is None for value in values.values()) and parent is None:
        return None
    return Process(**values, signature_valid=signature_valid, parent=parent)


def _image_of(cmdline: Any) -> str | None:
    """The program name a command line starts with (quoted or not), for records that give no image name."""
    text = str(cmdline or "").strip()
    if text.startswith('"'):
        return basename(text[1:].split('"', 1)[0])
    return basename(text.split(None, 1)[0]) if text else None


def make_parent(**values: Any) -> ParentProcess | None:
    """A parent process from the same values `make_process` takes (a parent has no parent of its own)."""
    process = make_process(**values)
    return ParentProcess(**process.model_dump(exclude={"parent"})) if process else None


def make_file(
    *,
    name: Any = None,
    path: Any = None,
    sha256: Any = None,
    sha1: Any = None,
    md5: Any = None,
    signer: Any = None,
    signature_valid: bool | None = None,
) -> FileInfo | None:
    path_text = str(path).strip() if path else None
    file = some(
        FileInfo,
        name=(str(name).strip() if name else None) or basename(path_text),
        path=path_text,
        sha256=_sized_hash(sha256, 64),
        sha1=_sized_hash(sha1, 40),
        md5=_sized_hash(md5, 32),
        signer=signer_name(signer),
    )
    return file.model_copy(update={"signature_valid": signature_valid}) if file else None


_DN_COMMON_NAME = re.compile(r"(?:^|[,/]\s*)CN\s*=\s*(\"[^\"]*\"|[^,/]+)", re.IGNORECASE)
_APPLE_SIGNER = re.compile(r"^Developer ID Application:\s*(.+?)(?:\s*\([A-Z0-9]{10}\))?$")


def signer_name(value: Any) -> str | None:
    """The signer as a plain name, whatever form the EDR reports: a certificate subject DN
    (`CN=Contoso Ltd, O=Contoso Ltd, C=US`) gives its common name, and an Apple Developer ID subject
    (`Developer ID Application: Contoso Ltd (ABCDE12345)`) gives the company name."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    common = _DN_COMMON_NAME.search(text)
    if common and "=" in text:
        text = common.group(1).strip().strip('"')
    apple = _APPLE_SIGNER.match(text)
    return (apple.group(1) if apple else text) or None


def _sized_hash(value: Any, size: int) -> str | None:
    digest = real_hash(value)
    return digest if digest and len(digest) == size else None


def container_items(record: dict[str, Any], raw: str, key: str) -> list[tuple[dict[str, Any], str]]:
    """The alerts held under `key` of an API page or incident, each with its own original text."""
    value = record.get(key)
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    texts = member_texts(raw, key)
    if texts is None or len(texts) != len(items):
        # `raw` is not this record's text (a caller passed something else): fall back to canonical JSON.
        texts = [canonical_json(item) if isinstance(item, dict) else "" for item in items]
    out = []
    for index, (item, text) in enumerate(zip(items, texts, strict=True)):
        if not isinstance(item, dict):
            raise IngestError("an alert in the list is not a JSON object", f"{key}[{index}]")
        out.append((item, text))
    return out
