"""What the builtin analyst reads its evidence into: the `Signals` it keeps for the ledger, the category of an
alert, and the values an alert names that a lookup must be about to count."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from soctriage.agents.analyst import Task
from soctriage.agents.state import Category, Finding, Output
from soctriage.service.alert_entities import HASH_KINDS, OBSERVABLES, alert_entities, alert_processes
from soctriage.service.domain import Alert, Disposition
from soctriage.tools.commandline import indicators_in
from soctriage.tools.lineage import Lineage
from soctriage.tools.lolbins import binary_name

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


def findings(task: Task, tool: str, output: type[Output]) -> Iterator[tuple[Finding, Output]]:
    """The successful findings of one tool, each with its output as `output`, the tool's output model."""
    return ((f, f.output_as(output)) for f in task.findings if f.tool == tool and f.ok)


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


def alert_values(task: Task) -> frozenset[str]:
    """Lower-cased values the alert names (structured fields and observables, with their other spellings)
    plus indicators the lineage tool decoded from its command line: what the builtin's lookups may be about."""
    values = {str(e.value).lower() for e in alert_entities(task.alert, aliases=True, free_text=False)}
    for _, lineage in findings(task, "process_lineage", Lineage):
        values.update(i.lower() for i in indicators_in(lineage.decoded_powershell or ""))
    return frozenset(values)


def alert_hashes(alert: Alert) -> list[str]:
    """The hashes of the alert's processes and file, in the module order of service/alert_entities."""
    return [str(e.value) for e in alert_entities(alert) if e.kind in HASH_KINDS and e.field != OBSERVABLES]


def alert_binaries(alert: Alert) -> frozenset[str]:
    return frozenset(binary_name(p.name or p.path or "") for p in alert_processes(alert) if p.name or p.path)
