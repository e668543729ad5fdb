"""The evidence report's shape: what an insurer or auditor reads, and what `--format json` prints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ReportModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Percentiles(ReportModel):
    """A duration distribution in seconds (nearest-rank percentiles); None when there are no samples."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    max: float | None = None


class Period(ReportModel):
    since: datetime | None = Field(description="first instant included (alert received at or after)")
    until: datetime | None = Field(description="first instant excluded")
    as_of: datetime | None = Field(
        description="the clock open work is measured against: `until`, else the newest ledger entry read"
    )


class Volume(ReportModel):
    alerts: int = 0
    cases: int = Field(default=0, description="the cases the alerts opened: one per incident when grouped")
    by_source: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    by_disposition: dict[str, int] = {}
    by_status: dict[str, int] = Field(default={}, description="each case's last status in its ledger")
    per_day: dict[str, int] = Field(default={}, description="alerts received per UTC day (YYYY-MM-DD)")


class CaseRef(ReportModel):
    case_id: str
    received_at: datetime
    status: str
    title: str


class Outcomes(ReportModel):
    documented: int = 0
    share: float | None = Field(default=None, description="documented / alerts (target 1.0)")
    without: list[CaseRef] = Field(default=[], description="alerts without a documented outcome (capped)")
    without_total: int = 0


class LateIncident(ReportModel):
    case_id: str
    received_at: datetime
    resolved_at: datetime | None
    hours: float = Field(description="received to resolution, or to as_of when still open")


class Timings(ReportModel):
    mttd: Percentiles = Percentiles()
    time_to_triage: Percentiles = Percentiles()
    mttc: Percentiles = Percentiles()
    mttr: Percentiles = Percentiles()
    verdict_histogram: dict[str, int] = Field(default={}, description="time to verdict, bucketed")
    notification_window_h: float = 72.0
    incidents: int = Field(default=0, description="cases with a true_positive verdict")
    incidents_outside_window: int = 0
    outside: list[LateIncident] = []


class ActionRow(ReportModel):
    tool: str
    allow: int = 0
    needs_approval: int = 0
    deny: int = 0
    executed: int = 0


class ApprovalRow(ReportModel):
    case_id: str
    action_id: str
    tool: str
    requested_at: datetime
    approver: str | None
    outcome: Literal["approved", "rejected", "expired", "pending", "lapsed"]
    decided_at: datetime | None
    latency_s: float | None


class DenialRow(ReportModel):
    rule_id: str
    count: int
    reason: str = Field(description="the guard's reason on the first denial under this rule")


class Actions(ReportModel):
    by_tool: list[ActionRow] = []
    approvals_requested: int = 0
    approvals_by_outcome: dict[str, int] = {}
    approval_latency: Percentiles = Percentiles()
    approvers: dict[str, int] = Field(default={}, description="decisions per human approver")
    approvals: list[ApprovalRow] = Field(default=[], description="each approval request (capped)")
    denials: list[DenialRow] = []
    rate_limit_hits: int = 0
    sensitive_targets: int = Field(
        default=0, description="actions aimed at a privileged identity or a high/critical asset or a DC"
    )
    sensitive_without_approval: int = Field(
        default=0, description="of those, executed without a human approval"
    )
    executed_by_connector: dict[str, int] = {}


class ModelUsage(ReportModel):
    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latency_ms: Percentiles = Field(default=Percentiles(), description="model call latency in ms")
    calls_by_model: dict[str, int] = {}
    verdicts_by_model: dict[str, int] = {}
    fallbacks_to_builtin: int = 0
    escalations: int = 0
    escalation_reasons: dict[str, int] = {}
    verdict_rejections: int = 0
    injection_flags: int = 0
    feedback: int = 0


class CaseIntegrity(ReportModel):
    """One chain. For an unverified chain the head is the last entry read, not a checked value."""

    case_id: str
    result: Literal["ok", "failed", "not_verified"]
    entries: int
    head_seq: int | None
    head_hash: str | None
    problem: str | None = None


class Integrity(ReportModel):
    method: Literal["verified", "carried_forward", "not_verified"] = Field(
        description="verified: every chain re-checked in this run; carried_forward: results of an earlier "
        "report reused for chains whose head has not moved; not_verified: no check was run"
    )
    cases: int = 0
    ok: int = 0
    failed: int = 0
    unverified: int = 0
    entries: int = 0
    heads_digest: str | None = Field(
        default=None,
        description="sha256 over 'case_id seq head_hash' lines of every case, sorted: one value to record",
    )
    failures: list[CaseIntegrity] = []
    heads: list[CaseIntegrity] = Field(default=[], description="every case: result and chain head")
    carried_from: datetime | None = Field(default=None, description="when the reused results were made")


class CheckpointCitation(ReportModel):
    """The signed ledger checkpoint the report rests on: the newest of its scope when it was made."""

    origin: str = Field(description="the log: signing key name and tenant scope")
    number: int
    tree_size: int
    cases: int = Field(description="cases of the whole scope the checkpoint commits to")
    signed_at: datetime
    root_hash: str = Field(description="base64 RFC 6962 root hash, as in the note")
    note: str = Field(description="the checkpoint, byte for byte: a C2SP signed note")
    signature: str = Field(description="the note's signature line")
    key_fingerprint: str = Field(description="sha256 of the Ed25519 public key, hex")
    verifier_key: str | None = Field(description="the C2SP verifier key the signature was checked with")
    signature_check: str = Field(description="verified, or why it was not checked or failed")
    covered: int | None = Field(
        description="of this report's cases, how many the checkpoint covers (None: not checked)"
    )
    problems: list[str] = Field(
        default=[], description="cases that no longer extend the heads it committed, and log problems"
    )


class Provenance(ReportModel):
    """What was in force when the report was generated."""

    soctriage_version: str
    policy: str = Field(description="the guard policy file in force")
    policy_sha256: str | None = Field(description="sha256 of that file; None when it cannot be read")
    prompts: dict[str, str] = Field(description="prompt name -> sha256, as llm_call entries record them")


class MfaRow(ReportModel):
    case_id: str
    field: str
    value: str


class Mfa(ReportModel):
    alerts_with_mfa_fields: int = 0
    rows: list[MfaRow] = []


class Requirement(ReportModel):
    requirement: str
    evidence: str
    sections: list[str]
    status: Literal["met", "gap", "no data"]


class EvidenceReport(ReportModel):
    title: str = "SOC evidence report"
    tenant: str | None
    generated_at: datetime
    period: Period
    volume: Volume
    outcomes: Outcomes
    timings: Timings
    actions: Actions
    model: ModelUsage
    integrity: Integrity
    mfa: Mfa
    requirements: list[Requirement]
    list_limit: int = Field(description="longest list kept in each capped section")
    checkpoint: CheckpointCitation | None = Field(
        default=None, description="the signed checkpoint covering the period; None when there is none yet"
    )
    provenance: Provenance | None = None
