"""The builtin analyst: a deterministic triage policy, the default model and the baseline every LLM must beat.

It drives the same graph and tools as an LLM. It decides from the alert and the enrichment results: vendor
severity, threat-intel verdicts, asset criticality and identity privilege, process-lineage red flags (LOLBins,
encoded PowerShell, download cradles, Office spawning shells, attack commands), high-impact ATT&CK techniques
and the vendor's own verdict. It calls an alert benign only from structured facts the alert's author cannot
write (`Signals.benign_facts`), never from text, and only when nothing decisive says attack. Every answer
carries the signals that produced it, so the ledger explains each decision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from soctriage.agents.analyst import Step, Task
from soctriage.agents.calibration import calibrated
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
from soctriage.tools.commandline import decode_powershell, indicators_in
from soctriage.tools.known_good import canonical_path, driven_programs, file_name, path_is_specific
from soctriage.tools.lolbins import binary_name
from soctriage.tools.scope import alert_fields, url_host

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
    "attack_command": 3,
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
# Organisation-context sections that say an activity is sanctioned; change windows and gateway egress IPs only
# give context.
ORG_BENIGN_SECTIONS = frozenset(
    {"admin_tools", "scanners", "service_accounts", "ci_hosts", "internal_software", "phishing_simulations"}
)
ORG_CONFIDENCE = 0.9
KNOWN_GOOD_CONFIDENCE = 0.85
SIGNED_INSTALL_CONFIDENCE = 0.85
# The tenant's own analysts confirmed this exact pattern benign (tools/suppression.py).
ANALYST_RULE_CONFIDENCE = 0.9
VENDOR_BENIGN: dict[str, tuple[Disposition, float]] = {
    "test": ("benign_true_positive", 0.9),
    "benign": ("benign_true_positive", 0.85),
    "false_positive": ("false_positive", 0.85),
}


@dataclass
class Signals:
    """What the policy saw, kept for the ledger."""

    score: int = 0
    reasons: list[str] = field(default_factory=list)
    evidence: set[int] = field(default_factory=set)
    malicious_indicators: list[tuple[str, str]] = field(default_factory=list)
    severity_bump: int = 0
    techniques: set[str] = field(default_factory=set)
    # Independent evidence of an attack (intel, malicious lineage, high-impact techniques, documented LOLBin
    # abuse, injection, the vendor's own true-positive call): it rules out closing the case as benign on a
    # model's word. The decisive part (intel, malicious lineage, injection, the vendor) outranks even the
    # builtin's own structured benign facts.
    attack_evidence: list[str] = field(default_factory=list)
    # The part of the attack evidence that does not merely restate the detection (its severity and its ATT&CK
    # mapping are why the alert exists): a true-positive call needs some of it.
    corroborating: list[str] = field(default_factory=list)
    decisive: list[str] = field(default_factory=list)
    # The part of the decisive evidence that also settles a conflict with benign facts as an attack: a
    # malicious intel hit, the vendor's true-positive call, a known program outside its sanctioned context.
    # Against lineage flags or injection alone, benign facts leave the case to a human (inconclusive).
    conclusive: list[str] = field(default_factory=list)
    vendor_true_positive: bool = False
    # Structured facts the alert's author cannot write that say the activity is benign: (why, disposition,
    # confidence, seq). Only these ever make the builtin call an alert benign.
    benign_facts: list[tuple[str, Disposition, float, int]] = field(default_factory=list)
    # Benign evidence short of a fact (known-good software without a second fact): enough to keep the case
    # from being called an attack on weak signals, never enough to close it.
    benign_hints: list[str] = field(default_factory=list)

    def add(self, points: int, reason: str, seq: int | None = None) -> None:
        self.score += points
        self.reasons.append(f"{points:+d} {reason}")
        if seq is not None:
            self.evidence.add(seq)

    def attack(
        self,
        points: int,
        reason: str,
        seq: int | None = None,
        *,
        decisive: bool = False,
        conclusive: bool = False,
        corroborates: bool = True,
    ) -> None:
        self.add(points, reason, seq)
        self.attack_evidence.append(reason)
        if corroborates:
            self.corroborating.append(reason)
        if decisive or conclusive:
            self.decisive.append(reason)
        if conclusive:
            self.conclusive.append(reason)


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


class BuiltinAnalyst:
    name = NAME

    async def triage(self, task: Task) -> Step[TriageAssessment]:
        alert = task.alert
        verdict = alert.vendor_verdict
        wanted = [name for name, needed in self._enrichments(alert) if needed]
        hypotheses = [f"malicious activity: {alert.title}"]
        if verdict is not None:
            hypotheses.append(f"the vendor's own verdict: {verdict.kind} ({verdict.field}={verdict.value})")
        else:
            hypotheses.append("benign administrative or software activity")
        assessment = TriageAssessment(
            category="test" if verdict is not None and verdict.kind == "test" else category_of(alert),
            initial_severity=int(alert.severity.id) if alert.severity.id <= 6 else 0,
            hypotheses=hypotheses,
            enrichments=wanted,
            rationale="enrichment first: a verdict rests on what the tools find",
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
            want("known_good_lookup", {})
            want("org_context", {})
            want("suppression_rules_lookup", {})
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
                for indicator in indicators_in(decoded)[:MAX_INTEL_LOOKUPS]:
                    want("threat_intel_lookup", {"indicator": indicator})
        return Step(
            answer=EnrichmentPlan(calls=calls, final=final), reasoning={"model": NAME, "step": task.step}
        )

    async def decide(self, task: Task) -> Step[Verdict]:
        alert = task.alert
        signals = self.signals(task)
        disposition, raw = self.disposition_of(task, signals)
        # The rules give a raw confidence; the verdict carries the probability it is right (agents/calibration).
        confidence = calibrated(disposition, raw)
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
        reasoning = {"model": NAME, "score": signals.score, "signals": signals.reasons, "raw_confidence": raw}
        return Step(answer=verdict, reasoning=reasoning)

    def signals(self, task: Task) -> Signals:
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
        self._vendor(task, s)
        if task.injection:
            s.attack(
                2, f"alert text tries to instruct the analyst ({', '.join(task.injection)})", decisive=True
            )
        self._intel(task, s)
        for finding in _findings(task, "process_lineage"):
            for flag in finding.output.get("flags", []):
                # Every flag is evidence against a model's benign call; only the malicious ones also
                # outrank the builtin's own structured benign facts (legitimate software runs LOLBins too).
                decisive = flag in MALICIOUS_FLAGS
                s.attack(
                    LINEAGE_WEIGHTS.get(flag, 1), f"process lineage: {flag}", finding.seq, decisive=decisive
                )
        self._lolbin_abuse(task, s)
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
        about = _alert_values(task)
        for finding in _findings(task, "asset_context"):
            out = finding.output
            if str(finding.args.get("hostname", "")).lower() not in about:
                continue
            if out.get("criticality") in ("high", "critical") or out.get("role") == "domain_controller":
                s.severity_bump += 1
                s.reasons.append(
                    f"asset {out.get('hostname')} is {out.get('criticality')} ({out.get('role')})"
                )
                s.evidence.add(finding.seq)
        for finding in _findings(task, "identity_context"):
            if str(finding.args.get("username", "")).lower() not in about:
                continue
            if finding.output.get("privileged"):
                s.severity_bump += 1
                s.reasons.append(f"user {finding.output.get('username')} is privileged")
                s.evidence.add(finding.seq)
        for finding in _findings(task, "attack_lookup"):
            out = finding.output
            if out.get("status") == "unknown":
                s.techniques.discard(out.get("technique_id", ""))
        self._analyst_rules(task, s)
        sanctioned = self._org_context(task, s)
        self._known_good(task, s, sanctioned)
        self._signed_install(task, s)
        self._precedent(task, s)
        return s

    @staticmethod
    def _analyst_rules(task: Task, s: Signals) -> None:
        """A suppression rule the tenant's analysts taught on this exact pattern (detection, program, hash,
        parent, account, command shape): a benign fact, cited with the cases it came from."""
        for finding in _findings(task, "suppression_rules_lookup"):
            for hit in finding.output.get("matches", ()):
                taught = ", ".join(hit.get("source_cases", ()))
                why = (
                    f"analyst rule {hit['rule_id']} by {hit['author']} ({hit.get('reason') or 'no reason given'}),"
                    f" taught on cases {taught}"
                )
                s.benign_facts.append((why, hit["disposition"], ANALYST_RULE_CONFIDENCE, finding.seq))

    @staticmethod
    def _org_context(task: Task, s: Signals) -> bool:
        """The organisation's own word, matched on structured fields: a sanctioned admin tool used from its
        jump host by its account, a scanner in its window, and so on, is a benign fact; a near miss (the
        sanctioned tool from another host) is evidence of an attack. Returns whether an admin-tool entry
        applies, which is what makes a remote-management tool sanctioned."""
        sanctioned = False
        for finding in _findings(task, "org_context"):
            for hit in finding.output.get("applies", ()):
                what = f"organisation context {hit['section']} entry {hit['entry_id']} applies"
                if hit["section"] in ORG_BENIGN_SECTIONS:
                    s.benign_facts.append((what, "benign_true_positive", ORG_CONFIDENCE, finding.seq))
                    sanctioned = sanctioned or hit["section"] == "admin_tools"
                else:
                    s.reasons.append(f"{what} (context only, not enough to close)")
                    s.evidence.add(finding.seq)
            for miss in finding.output.get("near_misses", ()):
                unmet = "; ".join(miss.get("unmet", ())) or "outside its sanctioned context"
                why = f"organisation context {miss['section']} entry {miss['entry_id']} near miss: {unmet}"
                s.attack(2, why, finding.seq, conclusive=True)
        return sanctioned

    @staticmethod
    def _signed_install(task: Task, s: Signals) -> None:
        """A signer plus an install path only administrators can write plus a hash intel knows as benign: the
        program is that vendor's software where it belongs. Programs that run whatever they are handed
        (LOLBins, script hosts, web servers) are left out: their signature says nothing about the run."""
        benign_hashes = {
            str(f.output.get("indicator", "")).lower(): f.seq
            for f in _findings(task, "threat_intel_lookup")
            if f.output.get("verdict") == "benign"
        }
        for label, item in (("process", task.alert.process), ("file", task.alert.file)):
            if item is None or not item.signer or item.signature_valid is not True or not item.sha256:
                continue
            seq = benign_hashes.get(item.sha256.lower())
            place = canonical_path(item.path)
            if seq is None or place is None or not path_is_specific(place[0]):
                continue
            if file_name(place[0]) in driven_programs():
                continue
            why = f"the {label} {place[0]} is validly signed by {item.signer} and its hash is known benign"
            s.benign_facts.append((why, "false_positive", SIGNED_INSTALL_CONFIDENCE, seq))

    @staticmethod
    def _known_good(task: Task, s: Signals, sanctioned: bool) -> None:
        """Public records of legitimate software that trips this very detection (SigmaHQ filters, LOLRMM).
        A match is a benign fact only with a second structured fact the attacker cannot forge for a copy in
        that folder: a signature the EDR validated, a hash intel knows as benign, or an organisation entry
        that applies. A remote-management tool is benign only where the organisation sanctions it."""
        second = _second_fact(task, s)
        configured = any(f.output.get("configured") for f in _findings(task, "org_context"))
        for finding in _findings(task, "known_good_lookup"):
            for match in finding.output.get("matches", ()):
                cited = ", ".join(_citation(src) for src in match.get("sources", ()))
                name = f"{match['name']} [{match['entry_id']}; {cited}]"
                if match["kind"] == "remote_admin_tool":
                    tool = match.get("tool") or match["name"]
                    if not configured:
                        # Without the organisation's word, a remote-management tool is neither sanctioned nor
                        # rogue: worth a look, not a verdict.
                        why = f"remote-management tool {tool}; no organisation context says whether it is sanctioned"
                        s.attack(1, why, finding.seq, corroborates=False)
                    elif not sanctioned:
                        why = f"remote-management tool {tool} with no sanctioned use in the organisation context"
                        s.attack(2, why, finding.seq, conclusive=True)
                    continue
                if not (match.get("excused_techniques") or match.get("excuses_rule")):
                    note = f"known software {name}, though its sources do not name this detection"
                    s.reasons.append(note)
                    s.evidence.add(finding.seq)
                    # A whole known lineage (this parent starting this program) still argues for benign; a
                    # lone system binary does not: attackers run inside those too.
                    if len(match.get("matched", ())) >= 2:
                        s.benign_hints.append(note)
                elif second is None:
                    hint = f"known-good {name}, but no second fact (valid signature, benign hash)"
                    s.reasons.append(hint)
                    s.benign_hints.append(hint)
                    s.evidence.add(finding.seq)
                else:
                    why = f"known-good software {name}, with {second}"
                    s.benign_facts.append((why, "false_positive", KNOWN_GOOD_CONFIDENCE, finding.seq))

    @staticmethod
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

    @staticmethod
    def _lolbin_abuse(task: Task, s: Signals) -> None:
        alert_parents = {t.split(".")[0] for t in s.techniques}
        named = _alert_binaries(task.alert)
        for finding in _findings(task, "lolbin_lookup"):
            if (
                not finding.output.get("is_lolbin")
                or str(finding.output.get("name", "")).lower() not in named
            ):
                continue
            s.evidence.add(finding.seq)
            known_abuse = {
                t.split(".")[0] for t in (finding.output.get("lolbin") or {}).get("attack_ids", ())
            }
            if known_abuse & alert_parents:
                # The detection ties the binary to the very technique it is documented to be abused for;
                # counted once, so the shell that launched it is not a second signal.
                name = finding.output.get("name")
                used = ", ".join(sorted(known_abuse & alert_parents))
                s.attack(2, f"{name} used for its documented abuse ({used})", finding.seq)
                return

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
        about = _alert_values(task)
        hashes = {h.lower() for h in _alert_hashes(task.alert)}
        for finding in _findings(task, "threat_intel_lookup"):
            indicator = str(finding.output.get("indicator", ""))
            if indicator.lower() not in about:
                continue  # a lookup of something the alert never named says nothing about it
            verdict = finding.output.get("verdict")
            verdicts.append(verdict)
            if any(indicator == seen for seen, _ in s.malicious_indicators):
                continue  # the same indicator looked up twice (e.g. also found in decoded PowerShell)
            if verdict == "malicious":
                points = 4 if not s.malicious_indicators else 1
                s.attack(points, f"threat intel: {indicator} malicious", finding.seq, conclusive=True)
                s.malicious_indicators.append((indicator, str(finding.output.get("type", ""))))
            elif verdict == "suspicious":
                s.attack(1, f"threat intel: {indicator} suspicious", finding.seq, conclusive=True)
            elif verdict == "benign":
                s.evidence.add(finding.seq)
                tags = {str(t) for hit in finding.output.get("hits", ()) for t in hit.get("tags", ())}
                if indicator.lower() in hashes and tags & TEST_FILE_TAGS:
                    why = f"threat intel: {indicator} is a known test file ({', '.join(sorted(tags))})"
                    s.benign_facts.append((why, "benign_true_positive", 0.9, finding.seq))
        if verdicts and all(v == "benign" for v in verdicts):
            s.add(-2, "every indicator is known benign")

    @staticmethod
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


def weight_of_evidence(task: Task, s: Signals) -> float | None:
    """The raw confidence of a true-positive call by the score alone, or None when the score does not
    reach one."""
    if s.score >= 5:
        return round(min(0.97, 0.55 + 0.06 * s.score), 2)
    if s.score >= 3 and task.alert.severity.id >= SeverityId.MEDIUM:
        return 0.6
    return None


def independent_objection(task: Task) -> str | None:
    """Why the evidence rules out closing this case as benign, or None. The floor under every auto-close:
    whatever a model says, the builtin's own reading of the intel, lineage, techniques, injection findings and
    the vendor's verdict must not point to an attack, unless its structured benign facts settle the case."""
    analyst = BuiltinAnalyst()
    s = analyst.signals(task)
    # Hints of benign software only keep the builtin from containing on its own; they lift no objection.
    s.benign_hints.clear()
    disposition, _ = analyst.disposition_of(task, s)
    if disposition in DISPOSITIONS_AUTO_CLOSE:
        return None
    if s.attack_evidence:
        return "independent evidence of an attack: " + "; ".join(s.attack_evidence)
    if disposition == "true_positive" or weight_of_evidence(task, s) is not None:
        # An uncorroborated detection is not enough for the builtin to call an attack, nor for a model to
        # close one: without a benign fact it goes to a human.
        return f"the weight of the evidence says attack (score {s.score}: {'; '.join(s.reasons)})"
    return None


def _second_fact(task: Task, s: Signals) -> str | None:
    """A structured fact that vouches for the alert's binary beyond its path: a signature the EDR validated,
    a hash intel calls benign, or an organisation-context entry that applies."""
    alert = task.alert
    for label, item in (("process", alert.process), ("file", alert.file)):
        if item is not None and item.signer and item.signature_valid is True:
            return f"a valid signature by {item.signer} on the {label}"
    hashes = {h.lower() for h in _alert_hashes(alert)}
    for finding in _findings(task, "threat_intel_lookup"):
        if (
            finding.output.get("verdict") == "benign"
            and str(finding.output.get("indicator", "")).lower() in hashes
        ):
            return f"a hash threat intel knows as benign ({finding.output['indicator']})"
    if any(
        fact[1] == "benign_true_positive" and fact[0].startswith("organisation") for fact in s.benign_facts
    ):
        return "an organisation-context entry that applies"
    return None


def _citation(source: dict[str, Any]) -> str:
    """How a known-good source is cited (DRL 1.1 asks for the rule's author wherever a match is shown)."""
    author = f" by {source['author']}" if source.get("author") else ""
    return f"{source.get('kind', 'source')} {source.get('id')} '{source.get('title')}'{author} ({source.get('license')})"


def _indicators(alert: Alert) -> list[str]:
    """The indicators worth a threat-intel lookup: not the alert's own host (the intel service keeps every
    other internal address to local intel; it never sends one out)."""
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
    own = {alert.device.ip, alert.device.hostname} if alert.device else set()
    return [v for v in seen if v not in own]


def _alert_values(task: Task) -> frozenset[str]:
    """Lower-cased values the alert names (structured fields, observables, URL hosts) plus indicators the
    lineage tool decoded from its command line: what the builtin's lookups may be about."""
    alert = task.alert
    values = {str(v).lower() for _, v in alert_fields(alert)}
    for obs in alert.observables:
        values.add(obs.value.lower())
        if obs.type == "url" and (host := url_host(obs.value)):
            values.add(host.lower())
    for finding in _findings(task, "process_lineage"):
        values.update(i.lower() for i in indicators_in(finding.output.get("decoded_powershell") or ""))
    return frozenset(values)


def _alert_hashes(alert: Alert) -> list[str]:
    procs = (alert.process, alert.process.parent if alert.process else None)
    values = [p.sha256 for p in procs if p] + (
        [alert.file.sha256, alert.file.sha1, alert.file.md5] if alert.file else []
    )
    return [v for v in values if v]


def _alert_binaries(alert: Alert) -> frozenset[str]:
    procs = (alert.process, alert.process.parent if alert.process else None)
    return frozenset(binary_name(p.name or p.path or "") for p in procs if p and (p.name or p.path))


def _offered(task: Task) -> set[str]:
    return {t["function"]["name"] for t in task.tools}


def _key(args: dict[str, Any]) -> str:
    return repr(sorted(args.items()))
