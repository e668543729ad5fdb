"""The builtin analyst: a deterministic triage policy, the default model and the baseline every LLM must beat.

It drives the same graph and tools as an LLM. It decides from the alert and the enrichment results: vendor
severity, threat-intel verdicts, asset criticality and identity privilege, process-lineage red flags (LOLBins,
encoded PowerShell, download cradles, Office spawning shells), high-impact ATT&CK techniques, the vendor's own
determination, and known-benign patterns. Every answer carries the signals that produced it, so the ledger
explains each decision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from soctriage.agents.analyst import Step, Task
from soctriage.agents.state import (
    DISPOSITIONS_AUTO_CLOSE,
    ActionPlan,
    Category,
    EnrichmentPlan,
    Finding,
    ProposedAction,
    ToolRequest,
    TriageAssessment,
)
from soctriage.service.domain import Alert, Disposition, Severity, SeverityId, Verdict
from soctriage.tools.lineage import decode_powershell

NAME = "builtin"
MAX_INTEL_LOOKUPS = 8
MAX_ATTACK_LOOKUPS = 5

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
}
CATEGORY_BY_TACTIC: dict[str, Category] = {
    "credential-access": "credential_access",
    "credential access": "credential_access",
    "execution": "execution",
    "persistence": "persistence",
    "lateral-movement": "lateral_movement",
    "lateral movement": "lateral_movement",
    "command-and-control": "command_and_control",
    "command and control": "command_and_control",
    "exfiltration": "exfiltration",
    "impact": "impact",
    "defense-evasion": "defense_evasion",
    "defense evasion": "defense_evasion",
    "discovery": "discovery",
    "initial-access": "initial_access",
    "initial access": "initial_access",
}
URL_OR_IP = re.compile(r"https?://[^\s'\"<>)]+|\b(?:\d{1,3}\.){3}\d{1,3}\b")


@dataclass(frozen=True)
class BenignPattern:
    """Activity known to be harmless. Matching text is alert data, so a pattern never overrides malicious intel.

    `confidence` below the auto-close threshold means: probably benign, but a human should confirm.
    """

    name: str
    pattern: re.Pattern[str]
    disposition: Disposition
    confidence: float = 0.9


BENIGN_PATTERNS = (
    BenignPattern(
        "vendor test detection",
        re.compile(r"crowdstrike_sample_detection|for evaluation only - benign|\beicar\b", re.I),
        "benign_true_positive",
    ),
    BenignPattern(
        "Windows compatibility telemetry task",
        re.compile(r"compattelrunner\.exe\W+-m:appraiser\.dll", re.I),
        "false_positive",
    ),
    BenignPattern(
        "Defender for Endpoint sensor process",
        re.compile(r"\\windows defender advanced threat protection\\mssense\.exe", re.I),
        "false_positive",
    ),
    BenignPattern(
        "adversary-emulation framework (sanctioned testing?)",
        re.compile(r"atomic-red-team|invoke-atomicredteam|\bcaldera\b", re.I),
        "benign_true_positive",
        confidence=0.7,
    ),
)
# The vendor's or an analyst's own determination, where the record carries one.
VENDOR_BENIGN = re.compile(
    r"informationalexpectedactivity|\"investigationstate\"\s*:\s*\"benign\"|benignpositive|\"falsepositive\"",
    re.I,
)
VENDOR_MALICIOUS = re.compile(
    r"\"true_?positive\"|\"truepositive\"|\"determination\"\s*:\s*\"malware\"", re.I
)


@dataclass
class Signals:
    """What the policy saw, kept for the ledger."""

    score: int = 0
    reasons: list[str] = field(default_factory=list)
    evidence: set[int] = field(default_factory=set)
    malicious_indicators: list[tuple[str, str]] = field(default_factory=list)
    severity_bump: int = 0
    techniques: set[str] = field(default_factory=set)

    def add(self, points: int, reason: str, seq: int | None = None) -> None:
        self.score += points
        self.reasons.append(f"{points:+d} {reason}")
        if seq is not None:
            self.evidence.add(seq)


def _findings(task: Task, tool: str) -> Iterable[Finding]:
    return (f for f in task.findings if f.tool == tool and f.ok)


def category_of(alert: Alert) -> Category:
    for attack in alert.attacks:
        if attack.tactic and attack.tactic.lower() in CATEGORY_BY_TACTIC:
            return CATEGORY_BY_TACTIC[attack.tactic.lower()]
    text = f"{alert.title} {alert.description or ''}".lower()
    for words, category in (
        (("credential", "lsass", "mimikatz", "password"), "credential_access"),
        (("ransom", "shadow cop", "encrypt"), "impact"),
        (("malware", "trojan", "virus", "pup", "adware"), "malware"),
        (("powershell", "script", "command"), "execution"),
        (("brute force", "logon", "mfa"), "credential_access"),
    ):
        if any(w in text for w in words):
            return category  # type: ignore[return-value]
    return "other"


def benign_pattern(alert: Alert) -> BenignPattern | None:
    text = alert_facts(alert)
    return next((p for p in BENIGN_PATTERNS if p.pattern.search(text)), None)


def alert_facts(alert: Alert) -> str:
    """The alert's normalized text fields, unescaped (raw JSON doubles every backslash of a Windows path)."""
    parts = [alert.title, alert.description or ""]
    for proc in (alert.process, alert.process.parent if alert.process else None):
        if proc:
            parts += [proc.name or "", proc.path or "", proc.cmdline or ""]
    if alert.file:
        parts += [alert.file.name or "", alert.file.path or ""]
    return "\n".join(parts)


class BuiltinAnalyst:
    name = NAME

    async def triage(self, task: Task) -> Step[TriageAssessment]:
        alert = task.alert
        pattern = benign_pattern(alert)
        known_benign = pattern is not None and not task.injection
        wanted = [name for name, needed in self._enrichments(alert) if needed]
        assessment = TriageAssessment(
            category="test" if known_benign else category_of(alert),
            initial_severity=int(alert.severity.id) if alert.severity.id <= 6 else 0,
            hypotheses=self._hypotheses(alert, pattern),
            enrichments=wanted,
            known_benign=known_benign,
            rationale=f"matches known-benign pattern: {pattern.name}" if known_benign else "needs enrichment",
        )
        return Step(answer=assessment, reasoning={"model": NAME, "injection_markers": list(task.injection)})

    @staticmethod
    def _enrichments(alert: Alert) -> list[tuple[str, bool]]:
        return [
            ("asset_context", bool(alert.device and alert.device.hostname)),
            ("identity_context", bool(alert.user and alert.user.name)),
            ("process_lineage", alert.process is not None),
            ("threat_intel_lookup", bool(_indicators(alert))),
            ("lolbin_lookup", alert.process is not None),
            ("attack_lookup", bool(alert.techniques)),
        ]

    @staticmethod
    def _hypotheses(alert: Alert, pattern: BenignPattern | None) -> list[str]:
        hypotheses = [f"malicious activity: {alert.title}"]
        if pattern:
            hypotheses.append(f"benign: {pattern.name}")
        else:
            hypotheses.append("benign administrative or software activity")
        return hypotheses

    async def plan_enrichment(self, task: Task) -> Step[EnrichmentPlan]:
        alert = task.alert
        done = {(f.tool, _key(f.args)) for f in task.findings}
        calls: list[ToolRequest] = []

        def want(tool: str, args: dict[str, Any]) -> None:
            if (tool, _key(args)) not in done and tool in _offered(task):
                calls.append(ToolRequest(tool=tool, args=args))
                done.add((tool, _key(args)))

        if task.step == 0:
            if alert.device and alert.device.hostname:
                want("asset_context", {"hostname": alert.device.hostname})
            if alert.user and alert.user.name:
                want("identity_context", {"username": alert.user.name})
            if alert.process:
                want("process_lineage", {})
                for proc in (alert.process, alert.process.parent):
                    if proc and (proc.name or proc.path):
                        want("lolbin_lookup", {"name": proc.name or proc.path})
            for indicator in _indicators(alert)[:MAX_INTEL_LOOKUPS]:
                want("threat_intel_lookup", {"indicator": indicator})
            for technique in alert.techniques[:MAX_ATTACK_LOOKUPS]:
                want("attack_lookup", {"technique_id": technique})
            want("similar_cases", {})
            # A second round only pays off when lineage will decode a hidden command to look into.
            cmdline = alert.process.cmdline if alert.process else None
            final = not (cmdline and decode_powershell(cmdline))
        else:
            final = True
            # Second pass: indicators only visible after decoding (e.g. a URL inside -EncodedCommand).
            for finding in _findings(task, "process_lineage"):
                decoded = finding.output.get("decoded_powershell") or ""
                for indicator in URL_OR_IP.findall(decoded)[:MAX_INTEL_LOOKUPS]:
                    want("threat_intel_lookup", {"indicator": indicator})
        return Step(
            answer=EnrichmentPlan(calls=calls, final=final), reasoning={"model": NAME, "step": task.step}
        )

    async def decide(self, task: Task) -> Step[Verdict]:
        alert = task.alert
        signals = self.signals(task)
        disposition, confidence = self._disposition(task, signals)
        severity = self._severity(alert, signals, disposition)
        summary = f"{disposition.replace('_', ' ')}: {alert.title}"
        if alert.device and alert.device.hostname:
            summary += f" on {alert.device.hostname}"
        verdict = Verdict(
            disposition=disposition,
            severity=Severity.of(severity),
            confidence=confidence,
            techniques=tuple(sorted(signals.techniques)),
            summary=summary,
            rationale="; ".join(signals.reasons) or "no signal either way",
            evidence=tuple(sorted(signals.evidence | {task.alert_seq})),
            recommended_actions=tuple(a.tool for a in self._actions(task, disposition, severity, signals)),
        )
        return Step(
            answer=verdict, reasoning={"model": NAME, "score": signals.score, "signals": signals.reasons}
        )

    def signals(self, task: Task) -> Signals:
        alert = task.alert
        s = Signals(techniques=set(alert.techniques))
        sev = int(alert.severity.id)
        if sev in (SeverityId.HIGH, SeverityId.CRITICAL, SeverityId.FATAL):
            s.add(2, f"vendor severity {alert.severity.label}", task.alert_seq)
        elif sev == SeverityId.MEDIUM:
            s.add(1, "vendor severity Medium", task.alert_seq)
        elif sev in (SeverityId.INFORMATIONAL, SeverityId.LOW):
            s.add(-1, f"vendor severity {alert.severity.label}", task.alert_seq)
        self._intel(task, s)
        for finding in _findings(task, "process_lineage"):
            for flag in finding.output.get("flags", []):
                s.add(LINEAGE_WEIGHTS.get(flag, 1), f"process lineage: {flag}", finding.seq)
        alert_parents = {t.split(".")[0] for t in s.techniques}
        abuse_counted = False
        for finding in _findings(task, "lolbin_lookup"):
            if not finding.output.get("is_lolbin"):
                continue
            s.evidence.add(finding.seq)
            known_abuse = {
                t.split(".")[0] for t in (finding.output.get("lolbin") or {}).get("attack_ids", ())
            }
            if known_abuse & alert_parents and not abuse_counted:
                # The detection ties the binary to the very technique it is documented to be abused for;
                # counted once, so the shell that launched it is not a second signal.
                abuse_counted = True
                name = finding.output.get("name")
                s.add(
                    2,
                    f"{name} used for its documented abuse ({', '.join(sorted(known_abuse & alert_parents))})",
                    finding.seq,
                )
        high_impact = sorted(t for t in s.techniques if HIGH_IMPACT.match(t))
        if high_impact:
            s.add(2, f"high-impact ATT&CK techniques {', '.join(high_impact)}", task.alert_seq)
        elif s.techniques:
            s.add(1, f"the detection maps to ATT&CK {', '.join(sorted(s.techniques)[:3])}", task.alert_seq)
        if category_of(alert) == "credential_access":
            s.add(1, "credential access: a compromised account spreads the incident", task.alert_seq)
        for finding in _findings(task, "asset_context"):
            out = finding.output
            if out.get("criticality") in ("high", "critical") or out.get("role") == "domain_controller":
                s.severity_bump += 1
                s.reasons.append(
                    f"asset {out.get('hostname')} is {out.get('criticality')} ({out.get('role')})"
                )
                s.evidence.add(finding.seq)
        for finding in _findings(task, "identity_context"):
            if finding.output.get("privileged"):
                s.severity_bump += 1
                s.reasons.append(f"user {finding.output.get('username')} is privileged")
                s.evidence.add(finding.seq)
        for finding in _findings(task, "attack_lookup"):
            out = finding.output
            if out.get("status") == "unknown":
                s.techniques.discard(out.get("technique_id", ""))
        self._precedent(task, s)
        return s

    @staticmethod
    def _precedent(task: Task, s: Signals) -> None:
        """A near-identical past case an analyst confirmed counts one point: a hint, never the decision."""
        for finding in _findings(task, "similar_cases"):
            confirmed = [
                c
                for c in finding.output.get("cases", [])
                if c.get("disposition_source") == "analyst" and c.get("near_duplicate")
            ]
            if not confirmed:
                continue
            best = confirmed[0]
            points = {"true_positive": 1, "false_positive": -1, "benign_true_positive": -1}.get(
                best.get("disposition"), 0
            )
            if points:
                s.add(
                    points,
                    f"similar past case {best['case_id']} (similarity {best['similarity']:.2f}) was confirmed"
                    f" {best['disposition']} by an analyst",
                    finding.seq,
                )

    @staticmethod
    def _intel(task: Task, s: Signals) -> None:
        verdicts = []
        for finding in _findings(task, "threat_intel_lookup"):
            verdict = finding.output.get("verdict")
            verdicts.append(verdict)
            indicator = str(finding.output.get("indicator", ""))
            if any(indicator == seen for seen, _ in s.malicious_indicators):
                continue  # the same indicator looked up twice (e.g. also found in decoded PowerShell)
            if verdict == "malicious":
                s.add(
                    4 if not s.malicious_indicators else 1,
                    f"threat intel: {indicator} malicious",
                    finding.seq,
                )
                s.malicious_indicators.append((indicator, str(finding.output.get("type", ""))))
            elif verdict == "suspicious":
                s.add(1, f"threat intel: {indicator} suspicious", finding.seq)
            elif verdict == "benign":
                s.evidence.add(finding.seq)
        if verdicts and all(v == "benign" for v in verdicts):
            s.add(-2, "every indicator is known benign")

    @staticmethod
    def _disposition(task: Task, s: Signals) -> tuple[Disposition, float]:
        alert = task.alert
        pattern = benign_pattern(alert)
        disposition: Disposition
        if pattern and not s.malicious_indicators:
            s.reasons.append(f"known-benign pattern: {pattern.name}")
            disposition, confidence = pattern.disposition, pattern.confidence
        elif VENDOR_BENIGN.search(alert.raw) and not s.malicious_indicators:
            s.reasons.append("the vendor's own determination is benign / expected activity")
            disposition, confidence = "benign_true_positive", 0.8
        elif VENDOR_MALICIOUS.search(alert.raw):
            s.reasons.append("the vendor or an analyst labelled it a true positive")
            disposition, confidence = "true_positive", 0.85
        elif s.score >= 5:
            disposition, confidence = "true_positive", min(0.97, 0.55 + 0.06 * s.score)
        elif s.score >= 3 and alert.severity.id >= SeverityId.MEDIUM:
            disposition, confidence = "true_positive", 0.6
        elif s.score <= -2:
            disposition, confidence = "false_positive", 0.6
        else:
            disposition, confidence = "inconclusive", 0.5
        if task.injection and disposition in DISPOSITIONS_AUTO_CLOSE:
            # Text that argues for its own dismissal is itself a reason to have a human look.
            s.reasons.append(f"alert text tries to instruct the analyst ({', '.join(task.injection)})")
            disposition, confidence = "inconclusive", 0.5
        return disposition, round(confidence, 2)

    @staticmethod
    def _severity(alert: Alert, s: Signals, disposition: Disposition) -> int:
        if disposition in DISPOSITIONS_AUTO_CLOSE:
            return int(SeverityId.INFORMATIONAL)
        base = int(alert.severity.id) if 0 < alert.severity.id <= 5 else int(SeverityId.MEDIUM)
        if disposition == "true_positive" and s.score >= 7:
            base = max(base, int(SeverityId.HIGH))
        return min(int(SeverityId.CRITICAL), base + s.severity_bump)

    async def respond(self, task: Task) -> Step[ActionPlan]:
        assert task.verdict is not None
        verdict = task.verdict
        actions = self._actions(task, verdict.disposition, int(verdict.severity.id), self.signals(task))
        offered = _offered(task)
        return Step(
            answer=ActionPlan(actions=[a for a in actions if a.tool in offered]),
            reasoning={"model": NAME, "disposition": verdict.disposition},
        )

    @staticmethod
    def _actions(task: Task, disposition: Disposition, severity: int, s: Signals) -> list[ProposedAction]:
        alert = task.alert
        if disposition not in ("true_positive", "inconclusive"):
            return []
        label = {5: "critical", 4: "high", 3: "medium"}.get(severity, "low")
        actions = [
            ProposedAction(
                tool="create_ticket",
                args={
                    "title": alert.title[:200],
                    "severity": label,
                    "summary": f"{disposition}: {alert.title}",
                },
                reason="every true positive or undecided case gets a ticket for the analyst queue",
            )
        ]
        if disposition != "true_positive":
            return actions
        host = alert.device.hostname if alert.device else None
        if host and severity >= SeverityId.HIGH:
            actions.append(
                ProposedAction(tool="isolate_host", args={"hostname": host}, reason="contain a host")
            )
        if host and alert.process and alert.process.pid is not None:
            actions.append(
                ProposedAction(
                    tool="kill_process",
                    args={"hostname": host, "pid": alert.process.pid},
                    reason=f"stop {alert.process.name or 'the process'}",
                )
            )
        sha256 = (alert.file.sha256 if alert.file else None) or (
            alert.process.sha256 if alert.process else None
        )
        if host and sha256 and (s.malicious_indicators or severity >= SeverityId.HIGH):
            actions.append(
                ProposedAction(
                    tool="quarantine_file",
                    args={"hostname": host, "sha256": sha256},
                    reason="quarantine the file",
                )
            )
        for indicator, kind in s.malicious_indicators:
            if kind in ("ip", "domain", "url", "sha256", "sha1", "md5"):
                actions.append(
                    ProposedAction(
                        tool="block_indicator",
                        args={"indicator": indicator, "type": kind},
                        reason="threat intel says malicious",
                    )
                )
        if alert.user and alert.user.name and category_of(alert) == "credential_access":
            actions.append(
                ProposedAction(
                    tool="disable_user",
                    args={"username": alert.user.name},
                    reason="credentials may be compromised",
                )
            )
        return actions


def _indicators(alert: Alert) -> list[str]:
    seen: dict[str, None] = {}
    for obs in alert.observables:
        if obs.type in ("ip", "domain", "url", "sha256", "sha1", "md5"):
            seen.setdefault(obs.value, None)
    for value in (
        alert.process.sha256 if alert.process else None,
        alert.file.sha256 if alert.file else None,
        alert.network.dst_ip if alert.network else None,
        alert.network.domain if alert.network else None,
        alert.network.url if alert.network else None,
    ):
        if value:
            seen.setdefault(value, None)
    return list(seen)


def _offered(task: Task) -> set[str]:
    return {t["function"]["name"] for t in task.tools}


def _key(args: dict[str, Any]) -> str:
    return repr(sorted(args.items()))
