"""What the evidence report folds each case into, and the readers of the ledger values it folds (times,
reasons, MFA fields, sensitive targets)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from soctriage.service.ledger_events import TokenTotals
from soctriage.service.reports.model import CaseIntegrity, CaseRef, LateIncident, MfaRow, Percentiles

SENSITIVE_CRITICALITY = frozenset({"high", "critical"})
_MFA_KEY = re.compile(r"mfa|multi_?factor|2fa|two_?factor", re.IGNORECASE)


def percentiles(values: Sequence[float]) -> Percentiles:
    """Nearest-rank p50/p90 and the maximum; deterministic and exact for any sample size."""
    if not values:
        return Percentiles()
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)], 3)

    return Percentiles(count=len(ordered), p50=rank(0.5), p90=rank(0.9), max=round(ordered[-1], 3))


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _reason_bucket(reason: Any) -> str:
    # Reasons carry numbers and endpoint errors; keep their stable head so they group.
    text = str(reason or "unspecified").split(":", 1)[0]
    return re.sub(r"\d+(?:\.\d+)?", "N", text).strip()[:80] or "unspecified"


def _mfa_fields(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if _MFA_KEY.search(str(key)) and not isinstance(item, dict | list):
                yield sub, str(item)
            else:
                yield from _mfa_fields(item, sub)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _mfa_fields(item, f"{path}[{index}]")


def _is_sensitive(targets: Any) -> bool:
    return any(
        isinstance(t, dict)
        and (
            t.get("privileged") is True
            or t.get("criticality") in SENSITIVE_CRITICALITY
            or t.get("role") == "domain_controller"
        )
        for t in targets or ()
    )


@dataclass
class _Approval:
    case_id: str
    action_id: str
    tool: str
    requested_at: datetime
    expires_at: datetime | None
    approver: str | None = None
    outcome: str | None = None
    decided_at: datetime | None = None


@dataclass
class _Tally:
    """Everything the report needs, folded case by case."""

    alerts: int = 0
    cases: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    by_severity: Counter[str] = field(default_factory=Counter)
    by_disposition: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    per_day: Counter[str] = field(default_factory=Counter)
    documented: int = 0
    without: list[CaseRef] = field(default_factory=list)
    without_total: int = 0
    mttd: list[float] = field(default_factory=list)
    triage: list[float] = field(default_factory=list)
    mttc: list[float] = field(default_factory=list)
    mttr: list[float] = field(default_factory=list)
    incidents: int = 0
    late: list[LateIncident] = field(default_factory=list)
    late_total: int = 0
    open_incidents: list[tuple[str, datetime]] = field(default_factory=list)
    decisions: dict[str, Counter[str]] = field(default_factory=dict)
    executed: Counter[str] = field(default_factory=Counter)
    connectors: Counter[str] = field(default_factory=Counter)
    approvals: list[_Approval] = field(default_factory=list)
    approvals_total: int = 0
    approval_outcomes: Counter[str] = field(default_factory=Counter)
    approval_latency: list[float] = field(default_factory=list)
    approvers: Counter[str] = field(default_factory=Counter)
    undecided: list[datetime | None] = field(default_factory=list)
    denials: Counter[str] = field(default_factory=Counter)
    denial_reason: dict[str, str] = field(default_factory=dict)
    rate_limit_hits: int = 0
    sensitive: int = 0
    sensitive_unapproved: int = 0
    llm_failed: int = 0
    tokens: TokenTotals = field(default_factory=TokenTotals)
    llm_latency: list[float] = field(default_factory=list)
    calls_by_model: Counter[str] = field(default_factory=Counter)
    verdicts_by_model: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    escalations: int = 0
    escalation_reasons: Counter[str] = field(default_factory=Counter)
    verdict_rejections: int = 0
    injection_flags: int = 0
    feedback: int = 0
    checks: list[CaseIntegrity] = field(default_factory=list)
    entries: int = 0
    mfa_alerts: int = 0
    mfa_rows: list[MfaRow] = field(default_factory=list)
    newest: datetime | None = None


def _source_name(source: dict[str, Any]) -> str:
    """Vendor and product, without saying the vendor twice ("Elastic" + "Elastic Security")."""
    vendor, product = str(source.get("vendor") or "?"), str(source.get("product") or "")
    if product.lower().startswith(vendor.lower()):
        return product
    return f"{vendor} {product}".strip()


def _sorted(counter: Mapping[str, int]) -> dict[str, int]:
    """Largest first, ties by name: a stable order for tables and for identical JSON."""
    return dict(sorted(((k, v) for k, v in counter.items() if v), key=lambda kv: (-kv[1], kv[0])))
