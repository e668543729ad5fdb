"""Building blocks every normalizer shares: tracked field access, time and severity parsing, ATT&CK
validation, observables, and the one place an `Alert` is assembled."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from soctriage.service.domain import (
    Alert,
    AlertFormat,
    Attack,
    Device,
    FileInfo,
    Network,
    Observable,
    ObservableType,
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
from soctriage.service.ingest.limits import MAX_SOURCE_NAME_CHARS, MAX_VENDOR_ALERT_ID_CHARS
from soctriage.service.ingest.reader import member_texts
from soctriage.service.ingest.verdicts import vendor_verdict

PathPart = str | int
FieldPath = str | tuple[PathPart, ...]
_MISSING: Any = object()


@lru_cache(maxsize=4096)
def _split(path: str) -> tuple[PathPart, ...]:
    # A numeric segment indexes a list: "evidences.0.file.name".
    return tuple(int(part) if part.isdigit() else part for part in path.split("."))


def _as_tuple(path: FieldPath) -> tuple[PathPart, ...]:
    return _split(path) if isinstance(path, str) else path


def dotted(path: FieldPath) -> str:
    return path if isinstance(path, str) else ".".join(str(part) for part in path)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class Fields:
    """Read access to one vendor record that remembers which fields were mapped.

    Whatever a normalizer never read ends up in `Alert.unmapped`, so nothing the vendor sent is lost
    from the normalized view (the exact text is in `Alert.raw` as well).
    """

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self._used: set[tuple[PathPart, ...]] = set()

    def lookup(self, path: FieldPath) -> Any:
        node: Any = self.record
        for part in _as_tuple(path):
            if isinstance(node, dict):
                node = node.get(part if isinstance(part, str) else str(part), _MISSING)
            elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
                node = node[part]
            else:
                return _MISSING
            if node is _MISSING:
                return _MISSING
        return node

    def get(self, *paths: FieldPath) -> Any:
        """The first of `paths` holding a non-empty value (marked as mapped), else None."""
        for path in paths:
            value = self.lookup(path)
            if value is not _MISSING and not _empty(value):
                self._used.add(_as_tuple(path))
                return value
        return None

    def text(self, *paths: FieldPath) -> str | None:
        value = self.get(*paths)
        if value is None or isinstance(value, dict | list):
            return None
        text = str(value).strip()
        return text or None

    def integer(self, *paths: FieldPath) -> int | None:
        return to_int(self.get(*paths))

    def items(self, path: FieldPath) -> list[Any]:
        """A list field (a lone object counts as a one-item list), without marking it mapped."""
        value = self.lookup(path)
        if isinstance(value, list):
            return value
        return [] if value is _MISSING or value is None else [value]

    def mark(self, *paths: FieldPath) -> None:
        for path in paths:
            self._used.add(_as_tuple(path))

    def time(self, *paths: FieldPath) -> datetime:
        """The alert time: the first readable timestamp among `paths`; a record without one is rejected."""
        for path in paths:
            value = self.lookup(path)
            if value is _MISSING or _empty(value):
                continue
            parsed = parse_time(value)
            if parsed is None:
                raise IngestError(f"unreadable timestamp {str(value)[:64]!r}", dotted(path))
            self._used.add(_as_tuple(path))
            return parsed
        raise IngestError("missing required field", dotted(paths[0]))

    def unmapped(self) -> dict[str, Any]:
        touched: set[tuple[PathPart, ...]] = set()
        for path in self._used:
            touched.update(path[:depth] for depth in range(1, len(path)))
        left = _leftover(self.record, (), self._used, touched)
        return left if isinstance(left, dict) else {}


def _leftover(value: Any, path: tuple[PathPart, ...], used: set, touched: set) -> Any:
    if path in used:
        return _MISSING
    if path and path not in touched:
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            rest = _leftover(item, (*path, key), used, touched)
            if rest is not _MISSING and rest is not None:
                out[key] = rest
        return out or _MISSING
    if isinstance(value, list):
        rest_items = [_leftover(item, (*path, index), used, touched) for index, item in enumerate(value)]
        if all(item is _MISSING for item in rest_items):
            return _MISSING
        # Fully mapped elements stay as None so the positions of the others keep their meaning.
        return [None if item is _MISSING else item for item in rest_items]
    return value


def to_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 text or an epoch number; the epoch unit (s, ms, µs, ns) is inferred from the magnitude."""
    if isinstance(value, bool):
        return None
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            number = float(text)
        else:
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                return None
    if number is None or number <= 0:
        return None
    for divisor in (1, 1e3, 1e6, 1e9):
        if number / divisor < 1e11:  # 1e11 s is the year 5138: anything larger is a finer unit
            try:
                return datetime.fromtimestamp(number / divisor, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None


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


def real_hash(value: Any) -> str | None:
    """A hex digest, or None for the all-zero placeholders some vendors send when they have no hash."""
    if not value:
        return None
    text = str(value).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}", text) or not text.strip("0"):
        return None
    return text


def valid_ip(value: Any) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


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


# --- observables ---------------------------------------------------------------------------------------

_URL = re.compile(r"""\bhttps?://[^\s"'<>|^`]+""", re.IGNORECASE)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_HASH_TYPES: dict[int, ObservableType] = {64: "sha256", 40: "sha1", 32: "md5"}


class Observables:
    """An ordered, de-duplicated set of observables collected while mapping a record."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], None] = {}

    def add(self, kind: ObservableType, value: Any) -> None:
        if value is None:
            return
        text = str(value).strip()
        if text and text.lower() not in ("-", "unknown", "n/a", "null"):
            self._items[(kind, text)] = None

    def ip(self, value: Any) -> None:
        self.add("ip", valid_ip(value))

    def hash(self, value: Any) -> None:
        digest = real_hash(value)
        if digest:
            self.add(_HASH_TYPES[len(digest)], digest)

    def url(self, value: Any) -> None:
        if not value:
            return
        url = str(value).strip().rstrip(".,;)]}'\"")
        self.add("url", url)
        host = _url_host(url)
        if host and valid_ip(host):
            self.add("ip", valid_ip(host))
        elif host:
            self.add("domain", host)

    def typed(self, kind: ObservableType, value: Any) -> None:
        """Add `value` as `kind`, validating IPs, hashes and URLs the same way as everywhere else."""
        if kind == "ip":
            self.ip(value)
        elif kind in ("sha256", "sha1", "md5"):
            self.hash(value)
        elif kind == "url":
            self.url(value)
        else:
            self.add(kind, value)

    def from_text(self, text: Any) -> None:
        """URLs and IPv4 addresses written inside free text such as a command line."""
        if not text:
            return
        value = str(text)
        for match in _URL.finditer(value):
            self.url(match.group())
        for match in _IPV4.finditer(value):
            self.ip(match.group())

    def result(self) -> tuple[Observable, ...]:
        return tuple(Observable(type=kind, value=value) for kind, value in self._items)  # type: ignore[arg-type]


def _url_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


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


def entity_observables(
    seen: Observables,
    *,
    device: Device | None = None,
    user: User | None = None,
    process: Process | None = None,
    file: FileInfo | None = None,
    network: Network | None = None,
) -> None:
    """Every hostname, IP, user, process, file, hash, domain and URL held by the given entities."""
    if device:
        seen.add("hostname", device.hostname)
        seen.ip(device.ip)
    if user:
        seen.add("user", user.name)
    for proc in (process, process.parent if process else None):
        if proc:
            seen.add("process", proc.name)
            seen.hash(proc.sha256)
            seen.from_text(proc.cmdline)
    if file:
        seen.add("file", file.path or file.name)
        for digest in (file.sha256, file.sha1, file.md5):
            seen.hash(digest)
    if network:
        seen.ip(network.src_ip)
        seen.ip(network.dst_ip)
        seen.add("domain", network.domain)
        seen.url(network.url)


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
