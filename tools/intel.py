"""Threat-intel lookup for hashes, IPs, domains and URLs.

Offline by default: local intel files (the bundled tools/data/intel.jsonl plus Settings `intel_paths`), one
record per indicator: `{indicator, type, verdict, score, source, tags, description}`. VirusTotal v3 and
AbuseIPDB are consulted as well only when their API keys are set.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, ValidationError
from soctriage.service.config import ConfigError
from soctriage.service.domain import Frozen
from soctriage.service.jsonl import jsonl_rows
from soctriage.tools.datafiles import bundled, yaml_problem
from soctriage.tools.http import HttpConnector, path_segment
from soctriage.tools.tool_spec import ToolContext, ToolError, ToolOutput, tool

IndicatorType = Literal["sha256", "sha1", "md5", "ip", "domain", "url"]
IntelVerdict = Literal["malicious", "suspicious", "benign"]
LookupVerdict = Literal["malicious", "suspicious", "benign", "unknown"]
# Worst wins when sources disagree: one malicious report outweighs a benign one.
_RANK: dict[str, int] = {"unknown": 0, "benign": 1, "suspicious": 2, "malicious": 3}

BUNDLED_INTEL = bundled("intel.jsonl")

_HASH_TYPES: dict[int, IndicatorType] = {64: "sha256", 40: "sha1", 32: "md5"}
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z]{2,63}$")


class IntelFileError(ConfigError):
    """A local intel file is malformed; the message names the file, the line and the field."""


class IntelRecord(Frozen):
    indicator: str = Field(min_length=1)
    type: IndicatorType
    verdict: IntelVerdict
    score: int = Field(ge=0, le=100, description="0 benign … 100 certainly malicious")
    source: str
    tags: tuple[str, ...] = ()
    description: str | None = None


def detect_type(indicator: str) -> IndicatorType | None:
    value = indicator.strip()
    if "://" in value:
        return "url"
    try:
        ipaddress.ip_address(value)
        return "ip"
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-F]+", value) and len(value) in _HASH_TYPES:
        return _HASH_TYPES[len(value)]
    if _DOMAIN.match(value.lower()):
        return "domain"
    return None


# Addresses of our own networks: private (RFC 1918, IPv6 ULA), carrier-grade NAT, loopback, link-local and
# unspecified. (Python's `is_private` also covers the documentation ranges, which are not ours.)
INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
        "::/128",
    )
)


def is_internal_address(indicator: str) -> bool:
    """True for an IP address (or a URL on one) of a private, loopback or link-local network: it names our
    own network, so it is never sent to an external intel service."""
    host = indicator.strip()
    if "://" in host:
        try:
            host = urlsplit(host).hostname or ""
        except ValueError:
            return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return any(address in network for network in INTERNAL_NETWORKS if network.version == address.version)


def normalize_indicator(value: str, kind: IndicatorType) -> str:
    """`value` in the one form lookups index it by. ValueError when it is not a `kind`: a type given with an
    indicator is checked, never trusted, because the indicator goes into connector URLs and block lists."""
    value = value.strip()
    if kind == "url":
        normalized = value
    elif kind == "domain":
        normalized = value.lower().rstrip(".")
    else:
        normalized = value.lower()
    if detect_type(normalized) != kind:
        raise ValueError(f"{value[:80]!r} is not a valid {kind}")
    return str(ipaddress.ip_address(normalized)) if kind == "ip" else normalized


def load_intel_file(path: Path) -> list[IntelRecord]:
    """Read a JSONL file (one record a line) or a YAML file (a list, or `{indicators: [...]}`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IntelFileError(f"{path}: cannot read intel file: {exc.strerror or exc}") from exc
    rows: list[tuple[int, Any]] = []
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(text) or []
        except yaml.YAMLError as exc:
            raise IntelFileError(yaml_problem(path, exc)) from exc
        items = doc.get("indicators", []) if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise IntelFileError(f"{path}: expected a list of indicator records")
        rows = [(i + 1, item) for i, item in enumerate(items)]
        where = "record"
    else:
        rows = list(jsonl_rows(text.splitlines(), str(path), IntelFileError, comments=True))
        where = "line"
    records = []
    for n, item in rows:
        try:
            record = IntelRecord.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "(record)"
            raise IntelFileError(f"{path}: {where} {n}: field {field!r}: {err['msg']}") from exc
        try:
            norm = normalize_indicator(record.indicator, record.type)
        except ValueError as exc:
            raise IntelFileError(
                f"{path}: {where} {n}: field 'indicator': not a valid {record.type}"
            ) from exc
        records.append(record.model_copy(update={"indicator": norm}))
    return records


class IntelHit(Frozen):
    source: str
    verdict: LookupVerdict
    score: int | None = None
    tags: tuple[str, ...] = ()
    detail: str | None = None


class LocalIntel:
    """Indicators from local files, indexed by (type, normalized value). Later files add to earlier ones."""

    def __init__(self, records: Iterable[IntelRecord] = ()) -> None:
        self._index: dict[tuple[str, str], list[IntelRecord]] = {}
        for record in records:
            self._index.setdefault((record.type, record.indicator), []).append(record)

    @classmethod
    def from_paths(cls, paths: Iterable[Path]) -> LocalIntel:
        return cls(r for p in paths for r in load_intel_file(Path(p)))

    def __len__(self) -> int:
        return sum(len(v) for v in self._index.values())

    def lookup(self, indicator: str, kind: IndicatorType) -> list[IntelHit]:
        records = self._index.get((kind, normalize_indicator(indicator, kind)), [])
        return [
            IntelHit(source=r.source, verdict=r.verdict, score=r.score, tags=r.tags, detail=r.description)
            for r in records
        ]


class VirusTotalClient(HttpConnector):
    """VirusTotal API v3: /files/{hash}, /ip_addresses/{ip}, /domains/{domain}, /urls/{url id}."""

    label = "virustotal"

    def __init__(self, api_key: str, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._headers = {"x-apikey": api_key, "accept": "application/json"}

    async def lookup(self, indicator: str, kind: IndicatorType) -> IntelHit:
        if kind == "url":
            # VT identifies a URL by its unpadded urlsafe base64.
            path = "/urls/" + base64.urlsafe_b64encode(indicator.encode()).decode().rstrip("=")
        else:
            collection = {"ip": "ip_addresses", "domain": "domains"}.get(kind, "files")
            path = f"/{collection}/{path_segment(indicator)}"
        response = await self.request("GET", path, headers=self._headers, accept=frozenset({404}))
        if response.status_code == 404:
            return IntelHit(source="virustotal", verdict="unknown", detail="not found")
        attrs = (response.json().get("data") or {}).get("attributes") or {}
        stats = attrs.get("last_analysis_stats") or {}
        malicious, suspicious = int(stats.get("malicious", 0)), int(stats.get("suspicious", 0))
        engines = sum(int(v) for v in stats.values() if isinstance(v, int)) or 1
        verdict: LookupVerdict
        if malicious >= 3:
            verdict = "malicious"
        elif malicious or suspicious:
            verdict = "suspicious"
        elif stats:
            verdict = "benign"
        else:
            verdict = "unknown"
        return IntelHit(
            source="virustotal",
            verdict=verdict,
            score=round(100 * (malicious + suspicious) / engines),
            tags=tuple(attrs.get("tags") or ()),
            detail=f"{malicious} malicious / {suspicious} suspicious of {engines} engines",
        )


class AbuseIPDBClient(HttpConnector):
    """AbuseIPDB API v2: GET /check?ipAddress=…"""

    label = "abuseipdb"

    def __init__(self, api_key: str, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._headers = {"Key": api_key, "Accept": "application/json"}

    async def lookup(self, ip: str) -> IntelHit:
        body = await self.json(
            "GET", "/check", headers=self._headers, params={"ipAddress": ip, "maxAgeInDays": "90"}
        )
        data = body.get("data") or {}
        score = int(data.get("abuseConfidenceScore") or 0)
        verdict: LookupVerdict
        if data.get("isWhitelisted"):
            verdict = "benign"
        elif score >= 75:
            verdict = "malicious"
        elif score >= 25:
            verdict = "suspicious"
        else:
            verdict = "unknown"
        return IntelHit(
            source="abuseipdb",
            verdict=verdict,
            score=score,
            detail=f"{data.get('totalReports', 0)} reports; usage {data.get('usageType') or 'unknown'}",
        )


class IntelService:
    """Local intel plus whichever online connectors are configured."""

    def __init__(
        self,
        local: LocalIntel,
        virustotal: VirusTotalClient | None = None,
        abuseipdb: AbuseIPDBClient | None = None,
    ) -> None:
        self.local = local
        self.virustotal = virustotal
        self.abuseipdb = abuseipdb

    async def lookup(self, indicator: str, kind: IndicatorType) -> list[IntelHit]:
        value = normalize_indicator(indicator, kind)
        hits = self.local.lookup(value, kind)
        if is_internal_address(value):
            return hits  # an address of our own network stays here
        if self.virustotal is not None:
            hits.append(await self.virustotal.lookup(value, kind))
        if self.abuseipdb is not None and kind == "ip":
            hits.append(await self.abuseipdb.lookup(value))
        return hits


class IntelLookupInput(Frozen):
    indicator: str = Field(min_length=1, max_length=2048, description="hash, IP address, domain or URL")
    type: IndicatorType | None = Field(default=None, description="indicator type; detected when omitted")


class IntelLookupResult(ToolOutput):
    indicator: str
    type: IndicatorType
    verdict: LookupVerdict
    score: int | None = Field(default=None, description="highest score any source gave (0-100)")
    hits: tuple[IntelHit, ...] = ()

    def summary(self) -> str:
        line = f"{self.indicator} ({self.type}) {self.verdict}"
        if self.score is not None:
            line += f", score {self.score}"
        if self.hits:
            line += "; " + ", ".join(f"{h.source}: {h.detail or h.verdict}" for h in self.hits[:5])
        return line

    def entities(self) -> tuple[str, ...]:
        return (self.indicator,)

    def confirmed(self) -> tuple[str, ...]:
        """An independent source calls it a threat: it may be acted on (with a human) even when only the
        alert's free text named it."""
        return (self.indicator,) if self.verdict in ("malicious", "suspicious") else ()


@tool(tier="read", timeout_s=30.0, idempotent=True, targets={"indicator": "indicator"})
async def threat_intel_lookup(ctx: ToolContext, args: IntelLookupInput) -> IntelLookupResult:
    """Look up a file hash (sha256/sha1/md5), IP address, domain or URL in threat intelligence. Returns the
    worst verdict any source gave (malicious > suspicious > benign > unknown), the top score, and each hit."""

    kind = args.type or detect_type(args.indicator)
    if kind is None:
        raise ToolError(f"cannot tell what kind of indicator {args.indicator[:80]!r} is; pass `type`")
    try:
        value = normalize_indicator(args.indicator, kind)
    except ValueError as exc:
        raise ToolError(f"{args.indicator[:80]!r} is not a valid {kind}") from exc
    hits = await ctx.connectors.intel.lookup(value, kind)
    verdict = max((h.verdict for h in hits), key=_RANK.__getitem__, default="unknown")
    scores = [h.score for h in hits if h.score is not None]
    return IntelLookupResult(
        indicator=value, type=kind, verdict=verdict, score=max(scores) if scores else None, hits=tuple(hits)
    )


TOOLS = [threat_intel_lookup]
