"""The domain model (DESIGN §2): every other module imports these types; none redefines them.

`Alert` is aligned with the OCSF Detection Finding class (class_uid 2004). Models are frozen so that a value
handed to the graph, a tool or the ledger cannot be changed behind the writer's back.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import IntEnum
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from soctriage.service.ledger_events import LedgerEvent

AlertFormat = Literal["crowdstrike", "defender", "sentinelone", "elastic", "wazuh", "ocsf"]
ALERT_FORMATS: tuple[AlertFormat, ...] = (
    "crowdstrike",
    "defender",
    "sentinelone",
    "elastic",
    "wazuh",
    "ocsf",
)

CaseStatus = Literal["new", "triaging", "awaiting_approval", "contained", "closed", "escalated", "failed"]
FINAL_CASE_STATUSES: frozenset[str] = frozenset({"contained", "closed", "escalated", "failed"})
# A case may hold actions that wait for a human in these: an approver's queue, or an analyst's (a case whose
# model fell back to builtin, or whose action budget was spent, is escalated with its containment pending).
DECIDABLE_CASE_STATUSES: frozenset[str] = frozenset({"awaiting_approval", "escalated"})

Disposition = Literal["true_positive", "benign_true_positive", "false_positive", "inconclusive"]
DISPOSITIONS: tuple[Disposition, ...] = get_args(Disposition)

LedgerKind = Literal[
    "alert_received",
    "llm_call",
    "reasoning",
    "tool_call",
    "tool_result",
    "guard_decision",
    "approval_requested",
    "approval_decided",
    "action_executed",
    "verdict",
    "chat_message",
    "feedback",
    "status_change",
    "note",
]

GENESIS_HASH = "0" * 64


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SeverityId(IntEnum):
    """OCSF severity_id."""

    UNKNOWN = 0
    INFORMATIONAL = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5
    FATAL = 6
    OTHER = 99


class Severity(Frozen):
    id: SeverityId = SeverityId.UNKNOWN
    label: str = "Unknown"

    @classmethod
    def of(cls, severity_id: SeverityId | int) -> Severity:
        sid = SeverityId(severity_id)
        return cls(id=sid, label=sid.name.capitalize())


class Source(Frozen):
    vendor: str
    product: str
    format: AlertFormat
    vendor_alert_id: str | None = None


class Rule(Frozen):
    name: str | None = None
    uid: str | None = None


class Attack(Frozen):
    tactic: str | None = None
    tactic_id: str | None = Field(default=None, description="ATT&CK tactic id, TA0001-style")
    technique_id: str | None = None
    technique_name: str | None = None


class Device(Frozen):
    hostname: str | None = None
    ip: str | None = None
    os: str | None = None
    uid: str | None = None


class User(Frozen):
    name: str | None = None
    domain: str | None = None
    uid: str | None = None


class ParentProcess(Frozen):
    name: str | None = None
    pid: int | None = None
    cmdline: str | None = None
    path: str | None = None
    sha256: str | None = None
    signer: str | None = Field(default=None, description="subject of the image's code-signing certificate")
    signature_valid: bool | None = Field(
        default=None, description="the EDR verified the signature chain (None: the EDR did not say)"
    )


class Process(ParentProcess):
    parent: ParentProcess | None = None


class FileInfo(Frozen):
    name: str | None = None
    path: str | None = None
    sha256: str | None = None
    sha1: str | None = None
    md5: str | None = None
    signer: str | None = Field(default=None, description="subject of the file's code-signing certificate")
    signature_valid: bool | None = Field(
        default=None, description="the EDR verified the signature chain (None: the EDR did not say)"
    )


class Network(Frozen):
    src_ip: str | None = None
    dst_ip: str | None = None
    dst_port: int | None = None
    domain: str | None = None
    url: str | None = None


ObservableType = Literal[
    "hostname", "ip", "domain", "url", "sha256", "sha1", "md5", "user", "process", "file", "email", "other"
]


class Observable(Frozen):
    type: ObservableType
    value: str


VendorVerdictKind = Literal["benign", "false_positive", "test", "true_positive"]


class VendorVerdict(Frozen):
    """The vendor's (or its analysts') own determination, read from one structured field of the record.

    Never derived from text the alert's subject controls (titles, command lines, file names): those are written
    by whoever triggered the alert, so only a field the EDR itself fills can say "benign" or "test detection".
    """

    kind: VendorVerdictKind
    field: str = Field(description="the vendor field it was read from, dotted")
    value: str = Field(description="that field's value as the vendor wrote it")


class Alert(Frozen):
    """A normalized EDR alert. `raw` holds the original record text exactly as received."""

    id: str
    source: Source
    time: datetime
    severity: Severity = Severity()
    title: str
    description: str | None = None
    rule: Rule | None = None
    attacks: tuple[Attack, ...] = ()
    device: Device | None = None
    user: User | None = None
    process: Process | None = None
    file: FileInfo | None = None
    network: Network | None = None
    observables: tuple[Observable, ...] = ()
    vendor_verdict: VendorVerdict | None = None
    raw: str
    unmapped: dict[str, Any] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Naive vendor timestamps are UTC by every vendor's documentation; keep one zone everywhere.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def techniques(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.technique_id for a in self.attacks if a.technique_id))

    @property
    def account(self) -> str | None:
        """The user as `domain\\name`, lower case (None when the alert names no user)."""
        user = self.user
        if user is None or not user.name:
            return None
        return (f"{user.domain}\\{user.name}" if user.domain and "\\" not in user.name else user.name).lower()

    @property
    def detection(self) -> str:
        """What fired: the vendor's rule id, else its rule name, else the alert title."""
        return (self.rule and (self.rule.uid or self.rule.name)) or self.title


def alert_id(vendor: str, vendor_alert_id: str) -> str:
    """Stable alert id: the same vendor alert always maps to the same id (re-deliveries dedupe on it)."""
    digest = hashlib.sha256(f"{vendor}\x1f{vendor_alert_id}".encode()).hexdigest()
    return f"{vendor}-{digest[:20]}"


class Verdict(Frozen):
    disposition: Disposition
    severity: Severity
    confidence: float = Field(ge=0.0, le=1.0)
    techniques: tuple[str, ...] = ()
    summary: str
    rationale: str
    evidence: tuple[int, ...] = Field(default=(), description="ledger seq numbers the claims rest on")
    recommended_actions: tuple[str, ...] = ()


class Case(Frozen):
    id: str
    tenant: str = "default"
    status: CaseStatus = "new"
    alert_ids: tuple[str, ...] = ()
    verdict: Verdict | None = None
    status_times: dict[str, datetime] = Field(
        default_factory=dict, description="first time the case entered each status: the MTTx source"
    )
    assignee: str | None = None
    created_at: datetime


def canonical_json(value: Any) -> str:
    """The one serialisation that ledger hashes are computed over (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LedgerEntry(Frozen):
    """One link of a case's hash chain: hash = sha256(prev_hash ‖ canonical JSON of the entry without hash)."""

    case_id: str
    seq: int = Field(ge=1)
    ts: datetime
    actor: str
    kind: LedgerKind
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @staticmethod
    def compute_hash(
        case_id: str, seq: int, ts: datetime, actor: str, kind: str, payload: dict[str, Any], prev_hash: str
    ) -> str:
        return LedgerEntry.hash_of_text(
            case_id, seq, format_ts(ts), actor, kind, canonical_json(payload), prev_hash
        )

    @staticmethod
    def hash_of_text(
        case_id: str, seq: int, ts_text: str, actor: str, kind: str, payload_text: str, prev_hash: str
    ) -> str:
        """The hash from the entry's already-canonical parts: `ts_text` as `format_ts` writes it and
        `payload_text` as `canonical_json` writes it. The body is the canonical JSON of the whole entry,
        spelled out key by key in sorted order, so the payload (the bulk of it) is serialised only once."""
        # encode_basestring is exactly what canonical_json does to a str, minus ~1 µs of json.dumps set-up:
        # verify runs this for every entry of every chain.
        body = (
            f'{{"actor":{encode_basestring(actor)},"case_id":{encode_basestring(case_id)},'
            f'"kind":{encode_basestring(kind)},"payload":{payload_text},'
            f'"prev_hash":{encode_basestring(prev_hash)},"seq":{int(seq)},"ts":"{ts_text}"}}'
        )
        return hashlib.sha256((prev_hash + body).encode()).hexdigest()

    def event(self) -> LedgerEvent:
        """The payload as its kind's model (service/ledger_events.py); `ValidationError` if it does not fit."""
        # Imported here: the payload models are built on this module's types.
        from soctriage.service.ledger_events import parse_event

        return parse_event(self.kind, self.payload)

    def expected_hash(self) -> str:
        return self.compute_hash(
            self.case_id, self.seq, self.ts, self.actor, self.kind, self.payload, self.prev_hash
        )
