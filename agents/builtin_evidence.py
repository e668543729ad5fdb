"""How the builtin weighs the evidence: the attack signals (vendor severity and verdict, intel, lineage,
LOLBin abuse, techniques, injection, asset and identity), the benign facts (agents/builtin_benign.py), and the
disposition they add up to."""

from __future__ import annotations

import re

from soctriage.agents.analyst import Task
from soctriage.agents.builtin_benign import (
    analyst_rule_facts,
    known_good_facts,
    org_context_facts,
    signed_install_facts,
)
from soctriage.agents.builtin_signals import (
    Signals,
    alert_binaries,
    alert_hashes,
    alert_values,
    category_of,
    findings,
)
from soctriage.service.domain import Disposition, SeverityId
from soctriage.tools.attack import AttackLookupResult
from soctriage.tools.intel import IntelLookupResult
from soctriage.tools.inventory import AssetContext, IdentityContext
from soctriage.tools.lineage import Lineage
from soctriage.tools.lolbins import LolbinLookupResult
from soctriage.tools.retrieval_tools import SimilarCasesResult

# Techniques whose presence alone makes an alert urgent: credential theft, ransomware impact, injection.
HIGH_IMPACT = re.compile(r"^T(1003|1486|1490|1558|1055|1562|1070|1021|1047|1569|1543)(\.\d{3})?$")
LINEAGE_WEIGHTS = {
    "office_spawns_shell": 3,
    "web_server_spawns_shell": 3,
    "encoded_powershell": 2,
    "download_cradle": 2,
    "script_host_spawns_shell": 1,
    "lolbin_in_chain": 1,
    "runs_from_user_writable_path": 1,
    "attack_command": 3,
}
# Lineage flags that are themselves evidence of an attack. A LOLBin in the chain or a program in a
# user-writable folder is common in legitimate software too, so those two only add to the score.
MALICIOUS_FLAGS = frozenset(
    {
        "office_spawns_shell",
        "web_server_spawns_shell",
        "script_host_spawns_shell",
        "encoded_powershell",
        "download_cradle",
    }
)
# Intel tags of a hash that marks a harmless test file (EICAR): detections of it are expected.
TEST_FILE_TAGS = frozenset({"test-file"})
VENDOR_BENIGN: dict[str, tuple[Disposition, float]] = {
    "test": ("benign_true_positive", 0.9),
    "benign": ("benign_true_positive", 0.85),
    "false_positive": ("false_positive", 0.85),
}


def signals(task: Task) -> Signals:
    """What the alert and the lookups about it say. Findings about anything the alert does not name are
    ignored: a model that looked up something unrelated must not move the evidence either way."""
    alert = task.alert
    s = Signals(techniques=set(alert.techniques))
    sev = int(alert.severity.id)
    if sev in (SeverityId.HIGH, SeverityId.CRITICAL, SeverityId.FATAL):
        s.add(2, f"vendor severity {alert.severity.label}", task.alert_seq)
    elif sev == SeverityId.MEDIUM:
        s.add(1, "vendor severity Medium", task.alert_seq)
    elif sev in (SeverityId.INFORMATIONAL, SeverityId.LOW):
        s.add(-1, f"vendor severity {alert.severity.label}", task.alert_seq)
    _vendor(task, s)
    if task.injection:
        s.attack(2, f"alert text tries to instruct the analyst ({', '.join(task.injection)})", decisive=True)
    _intel(task, s)
    for finding, lineage in findings(task, "process_lineage", Lineage):
        for flag in lineage.flags:
            # Every flag is evidence against a model's benign call; only the malicious ones also
            # outrank the builtin's own structured benign facts (legitimate software runs LOLBins too).
            decisive = flag in MALICIOUS_FLAGS
            s.attack(LINEAGE_WEIGHTS.get(flag, 1), f"process lineage: {flag}", finding.seq, decisive=decisive)
    _lolbin_abuse(task, s)
    high_impact = sorted(t for t in s.techniques if HIGH_IMPACT.match(t))
    if high_impact:
        s.attack(
            2,
            f"high-impact ATT&CK techniques {', '.join(high_impact)}",
            task.alert_seq,
            corroborates=False,
        )
    elif s.techniques:
        s.add(1, f"the detection maps to ATT&CK {', '.join(sorted(s.techniques)[:3])}", task.alert_seq)
    if category_of(alert) == "credential_access":
        s.add(1, "credential access: a compromised account spreads the incident", task.alert_seq)
    about = alert_values(task)
    for finding, asset in findings(task, "asset_context", AssetContext):
        if str(finding.args.get("hostname", "")).lower() not in about:
            continue
        if asset.criticality in ("high", "critical") or asset.role == "domain_controller":
            s.severity_bump += 1
            s.reasons.append(f"asset {asset.hostname} is {asset.criticality} ({asset.role})")
            s.evidence.add(finding.seq)
    for finding, identity in findings(task, "identity_context", IdentityContext):
        if str(finding.args.get("username", "")).lower() not in about:
            continue
        if identity.privileged:
            s.severity_bump += 1
            s.reasons.append(f"user {identity.username} is privileged")
            s.evidence.add(finding.seq)
    for _, technique in findings(task, "attack_lookup", AttackLookupResult):
        if technique.status == "unknown":
            s.techniques.discard(technique.technique_id)
    analyst_rule_facts(task, s)
    sanctioned = org_context_facts(task, s)
    known_good_facts(task, s, sanctioned)
    signed_install_facts(task, s)
    _precedent(task, s)
    return s


def disposition_of(task: Task, s: Signals) -> tuple[Disposition, float]:
    """Benign only from structured facts, and only when nothing decisive says attack; true positive
    from the weight of the evidence; everything else goes to a human as inconclusive."""
    disposition: Disposition
    if s.benign_facts and not s.decisive:
        why, disposition, confidence, seq = s.benign_facts[0]
        s.reasons.append(f"benign: {why}")
        s.evidence.add(seq)  # the verdict cites the entry that holds its benign fact
        return disposition, confidence
    if s.benign_facts and not s.conclusive:
        s.reasons.append(
            f"benign facts ({s.benign_facts[0][0]}) against attack evidence ({'; '.join(s.decisive)}):"
            " a human decides"
        )
        return "inconclusive", 0.5
    if s.benign_facts:
        s.reasons.append(f"benign facts outranked by: {'; '.join(s.decisive)}")
    if s.benign_hints and not s.conclusive:
        s.reasons.append("benign software not proven against weak attack signals: a human decides")
        return "inconclusive", 0.5
    if s.vendor_true_positive:
        return "true_positive", 0.85
    weighed = weight_of_evidence(task, s)
    if weighed is None:
        return "inconclusive", 0.5
    if not s.corroborating and (task.alert.process or task.alert.file):
        # Severity and an ATT&CK mapping only say what the detection looks for; on a program or file that
        # nothing found backs up, a human decides. (A logon or network detection has nothing else to
        # corroborate it: there the detection is the evidence.)
        s.reasons.append("nothing beyond the detection's own severity and technique backs an attack")
        return "inconclusive", 0.5
    return "true_positive", weighed


def weight_of_evidence(task: Task, s: Signals) -> float | None:
    """The raw confidence of a true-positive call by the score alone, or None when the score does not
    reach one."""
    if s.score >= 5:
        return round(min(0.97, 0.55 + 0.06 * s.score), 2)
    if s.score >= 3 and task.alert.severity.id >= SeverityId.MEDIUM:
        return 0.6
    return None


def _vendor(task: Task, s: Signals) -> None:
    """The vendor's own verdict, from a structured field the alert's author cannot write."""
    verdict = task.alert.vendor_verdict
    if verdict is None:
        return
    said = f"the vendor's own verdict: {verdict.kind} ({verdict.field}={verdict.value})"
    if verdict.kind == "true_positive":
        s.attack(3, said, task.alert_seq, conclusive=True)
        s.vendor_true_positive = True
    else:
        disposition, confidence = VENDOR_BENIGN[verdict.kind]
        s.benign_facts.append((said, disposition, confidence, task.alert_seq))


def _intel(task: Task, s: Signals) -> None:
    verdicts = []
    about = alert_values(task)
    hashes = {h.lower() for h in alert_hashes(task.alert)}
    for finding, intel in findings(task, "threat_intel_lookup", IntelLookupResult):
        indicator, verdict = intel.indicator, intel.verdict
        if indicator.lower() not in about:
            continue  # a lookup of something the alert never named says nothing about it
        verdicts.append(verdict)
        if any(indicator == seen for seen, _ in s.malicious_indicators):
            continue  # the same indicator looked up twice (e.g. also found in decoded PowerShell)
        if verdict == "malicious":
            points = 4 if not s.malicious_indicators else 1
            s.attack(points, f"threat intel: {indicator} malicious", finding.seq, conclusive=True)
            s.malicious_indicators.append((indicator, intel.type))
        elif verdict == "suspicious":
            s.attack(1, f"threat intel: {indicator} suspicious", finding.seq, conclusive=True)
        elif verdict == "benign":
            s.evidence.add(finding.seq)
            tags = {t for hit in intel.hits for t in hit.tags}
            if indicator.lower() in hashes and tags & TEST_FILE_TAGS:
                why = f"threat intel: {indicator} is a known test file ({', '.join(sorted(tags))})"
                s.benign_facts.append((why, "benign_true_positive", 0.9, finding.seq))
    if verdicts and all(v == "benign" for v in verdicts):
        s.add(-2, "every indicator is known benign")


def _lolbin_abuse(task: Task, s: Signals) -> None:
    alert_parents = {t.split(".")[0] for t in s.techniques}
    named = alert_binaries(task.alert)
    for finding, binary in findings(task, "lolbin_lookup", LolbinLookupResult):
        if not binary.is_lolbin or binary.name.lower() not in named:
            continue
        s.evidence.add(finding.seq)
        known_abuse = {t.split(".")[0] for t in (binary.lolbin.attack_ids if binary.lolbin else ())}
        if known_abuse & alert_parents:
            # The detection ties the binary to the very technique it is documented to be abused for;
            # counted once, so the shell that launched it is not a second signal.
            used = ", ".join(sorted(known_abuse & alert_parents))
            s.attack(2, f"{binary.name} used for its documented abuse ({used})", finding.seq)
            return


def _precedent(task: Task, s: Signals) -> None:
    """A near-identical past case an analyst confirmed counts one point: a hint, never the decision."""
    for finding, similar in findings(task, "similar_cases", SimilarCasesResult):
        confirmed = [c for c in similar.cases if c.disposition_source == "analyst" and c.near_duplicate]
        if not confirmed:
            continue
        best = confirmed[0]
        points = {"true_positive": 1, "false_positive": -1, "benign_true_positive": -1}.get(
            best.disposition or "", 0
        )
        if points:
            s.add(
                points,
                f"similar past case {best.case_id} (similarity {best.similarity:.2f}) was confirmed"
                f" {best.disposition} by an analyst",
                finding.seq,
            )
