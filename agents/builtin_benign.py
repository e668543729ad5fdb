"""The builtin's benign facts from the organisation and the tenant: analyst rules, organisation context,
known-good software with a second fact, and signed software where it belongs. Only structured facts the
alert's author cannot write count; each is cited in the verdict."""

from __future__ import annotations

from soctriage.agents.analyst import Task
from soctriage.agents.builtin_signals import Signals, alert_hashes, findings
from soctriage.tools.intel import IntelLookupResult
from soctriage.tools.known_good import KnownGoodLookup
from soctriage.tools.known_good_entries import KnownGoodSource
from soctriage.tools.matching import canonical_path, driven_programs, file_name, path_is_specific
from soctriage.tools.org_context import OrgContextReport
from soctriage.tools.suppression import SuppressionRulesReport

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


def analyst_rule_facts(task: Task, s: Signals) -> None:
    """A suppression rule the tenant's analysts taught on this exact pattern (detection, program, hash,
    parent, account, command shape): a benign fact, cited with the cases it came from."""
    for finding, rules in findings(task, "suppression_rules_lookup", SuppressionRulesReport):
        for hit in rules.matches:
            taught = ", ".join(hit.source_cases)
            why = (
                f"analyst rule {hit.rule_id} by {hit.author} ({hit.reason or 'no reason given'}),"
                f" taught on cases {taught}"
            )
            s.benign_facts.append((why, hit.disposition, ANALYST_RULE_CONFIDENCE, finding.seq))


def org_context_facts(task: Task, s: Signals) -> bool:
    """The organisation's own word, matched on structured fields: a sanctioned admin tool used from its
    jump host by its account, a scanner in its window, and so on, is a benign fact; a near miss (the
    sanctioned tool from another host) is evidence of an attack. Returns whether an admin-tool entry
    applies, which is what makes a remote-management tool sanctioned."""
    sanctioned = False
    for finding, context in findings(task, "org_context", OrgContextReport):
        for hit in context.applies:
            what = f"organisation context {hit.section} entry {hit.entry_id} applies"
            if hit.section in ORG_BENIGN_SECTIONS:
                s.benign_facts.append((what, "benign_true_positive", ORG_CONFIDENCE, finding.seq))
                sanctioned = sanctioned or hit.section == "admin_tools"
            else:
                s.reasons.append(f"{what} (context only, not enough to close)")
                s.evidence.add(finding.seq)
        for miss in context.near_misses:
            unmet = "; ".join(miss.unmet) or "outside its sanctioned context"
            why = f"organisation context {miss.section} entry {miss.entry_id} near miss: {unmet}"
            s.attack(2, why, finding.seq, conclusive=True)
    return sanctioned


def signed_install_facts(task: Task, s: Signals) -> None:
    """A signer plus an install path only administrators can write plus a hash intel knows as benign: the
    program is that vendor's software where it belongs. Programs that run whatever they are handed
    (LOLBins, script hosts, web servers) are left out: their signature says nothing about the run."""
    benign_hashes = {
        intel.indicator.lower(): finding.seq
        for finding, intel in findings(task, "threat_intel_lookup", IntelLookupResult)
        if intel.verdict == "benign"
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


def known_good_facts(task: Task, s: Signals, sanctioned: bool) -> None:
    """Public records of legitimate software that trips this very detection (SigmaHQ filters, LOLRMM).
    A match is a benign fact only with a second structured fact the attacker cannot forge for a copy in
    that folder: a signature the EDR validated, a hash intel knows as benign, or an organisation entry
    that applies. A remote-management tool is benign only where the organisation sanctions it."""
    second = _second_fact(task, s)
    configured = any(context.configured for _, context in findings(task, "org_context", OrgContextReport))
    for finding, known in findings(task, "known_good_lookup", KnownGoodLookup):
        for match in known.matches:
            cited = ", ".join(_citation(src) for src in match.sources)
            name = f"{match.name} [{match.entry_id}; {cited}]"
            if match.kind == "remote_admin_tool":
                tool = match.tool or match.name
                if not configured:
                    # Without the organisation's word, a remote-management tool is neither sanctioned nor
                    # rogue: worth a look, not a verdict.
                    why = f"remote-management tool {tool}; no organisation context says whether it is sanctioned"
                    s.attack(1, why, finding.seq, corroborates=False)
                elif not sanctioned:
                    why = f"remote-management tool {tool} with no sanctioned use in the organisation context"
                    s.attack(2, why, finding.seq, conclusive=True)
                continue
            if not (match.excused_techniques or match.excuses_rule):
                note = f"known software {name}, though its sources do not name this detection"
                s.reasons.append(note)
                s.evidence.add(finding.seq)
                # A whole known lineage (this parent starting this program) still argues for benign; a
                # lone system binary does not: attackers run inside those too.
                if len(match.matched) >= 2:
                    s.benign_hints.append(note)
            elif second is None:
                hint = f"known-good {name}, but no second fact (valid signature, benign hash)"
                s.reasons.append(hint)
                s.benign_hints.append(hint)
                s.evidence.add(finding.seq)
            else:
                why = f"known-good software {name}, with {second}"
                s.benign_facts.append((why, "false_positive", KNOWN_GOOD_CONFIDENCE, finding.seq))


def _second_fact(task: Task, s: Signals) -> str | None:
    """A structured fact that vouches for the alert's binary beyond its path: a signature the EDR validated,
    a hash intel calls benign, or an organisation-context entry that applies."""
    alert = task.alert
    for label, item in (("process", alert.process), ("file", alert.file)):
        if item is not None and item.signer and item.signature_valid is True:
            return f"a valid signature by {item.signer} on the {label}"
    hashes = {h.lower() for h in alert_hashes(alert)}
    for _, intel in findings(task, "threat_intel_lookup", IntelLookupResult):
        if intel.verdict == "benign" and intel.indicator.lower() in hashes:
            return f"a hash threat intel knows as benign ({intel.indicator})"
    if any(
        fact[1] == "benign_true_positive" and fact[0].startswith("organisation") for fact in s.benign_facts
    ):
        return "an organisation-context entry that applies"
    return None


def _citation(source: KnownGoodSource) -> str:
    """How a known-good source is cited (DRL 1.1 asks for the rule's author wherever a match is shown)."""
    author = f" by {source.author}" if source.author else ""
    return f"{source.kind} {source.id} '{source.title}'{author} ({source.license})"
