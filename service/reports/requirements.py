"""The insurer questionnaire rows of the evidence report, each citing the report sections that answer it."""

from __future__ import annotations

from soctriage.service.reports.model import (
    Actions,
    CheckpointCitation,
    Integrity,
    Mfa,
    Outcomes,
    Requirement,
    Timings,
    Volume,
)


def requirements(
    volume: Volume,
    outcomes: Outcomes,
    timings: Timings,
    actions: Actions,
    integrity: Integrity,
    mfa: Mfa,
    checkpoint: CheckpointCitation | None = None,
) -> list[Requirement]:
    """The insurer questionnaire rows, each pointing at the report sections that answer it."""
    none = volume.alerts == 0
    share = "-" if outcomes.share is None else f"{outcomes.share:.1%}"
    rows = [
        Requirement(
            requirement="EDR coverage with documented response",
            evidence=f"{volume.alerts} alerts from {len(volume.by_source)} source(s); {share} reached a "
            f"documented outcome; {outcomes.without_total} without",
            sections=["Alert volume", "Documented outcomes"],
            status="no data" if none else ("met" if outcomes.without_total == 0 else "gap"),
        ),
        Requirement(
            requirement="Incident response within timelines",
            evidence=f"time to verdict p90 {fmt_duration(timings.time_to_triage.p90)}, to containment p90 "
            f"{fmt_duration(timings.mttc.p90)}; {timings.incidents_outside_window} of {timings.incidents} "
            f"incident(s) outside the {timings.notification_window_h:g} h window",
            sections=["Response times"],
            status="no data" if none else ("met" if timings.incidents_outside_window == 0 else "gap"),
        ),
        Requirement(
            requirement="Audit-ready incident logs",
            evidence=f"{integrity.ok} of {integrity.cases} case ledger(s) intact ({integrity.method}), "
            f"{integrity.failed} failed, {integrity.unverified} not verified; {integrity.entries} entries; "
            + _checkpoint_evidence(checkpoint),
            sections=["Ledger integrity", "Signed checkpoint"],
            status="no data"
            if integrity.cases == 0
            else (
                "met"
                if integrity.failed == 0
                and integrity.unverified == 0
                and not (checkpoint and checkpoint.problems)
                else "gap"
            ),
        ),
        Requirement(
            requirement="Vendor / privileged access actions approved",
            evidence=f"{actions.sensitive_targets} action(s) on privileged identities or critical assets, "
            f"{actions.sensitive_without_approval} carried out without a human approval; "
            f"{actions.approvals_requested} approval(s) requested; {sum(r.deny for r in actions.by_tool)} "
            "denied by policy",
            sections=["Response actions", "Approvals"],
            status="no data"
            if not actions.by_tool
            else ("met" if actions.sensitive_without_approval == 0 else "gap"),
        ),
        Requirement(
            requirement="MFA enforcement evidence (where alerts carry it)",
            evidence=f"{mfa.alerts_with_mfa_fields} alert(s) carry MFA fields from the vendor"
            if mfa.alerts_with_mfa_fields
            else "no alert in the period carries MFA fields",
            sections=["MFA evidence"],
            status="met" if mfa.alerts_with_mfa_fields else "no data",
        ),
    ]
    return rows


def _checkpoint_evidence(checkpoint: CheckpointCitation | None) -> str:
    if checkpoint is None:
        return "no signed checkpoint yet"
    text = f"signed checkpoint #{checkpoint.number} ({checkpoint.signed_at:%Y-%m-%d %H:%M} UTC), signature "
    text += checkpoint.signature_check.split(":", 1)[0]
    if checkpoint.covered is not None:
        text += f", covers {checkpoint.covered} of these cases, {len(checkpoint.problems)} problem(s)"
    return text


def fmt_duration(seconds: float | None) -> str:
    """A duration for people: ms, s, min, h or d, whichever reads best."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
