"""The builtin analyst: a deterministic triage policy, the default model and the baseline every LLM must beat.

It drives the same graph and tools as an LLM. It decides from the alert and the enrichment results: vendor
severity, threat-intel verdicts, asset criticality and identity privilege, process-lineage red flags (LOLBins,
encoded PowerShell, download cradles, Office spawning shells, attack commands), high-impact ATT&CK techniques
and the vendor's own verdict. It calls an alert benign only from structured facts the alert's author cannot
write (`Signals.benign_facts`), never from text, and only when nothing decisive says attack. Every answer
carries the signals that produced it, so the ledger explains each decision.
"""

from __future__ import annotations

from typing import Any

from soctriage.agents.analyst import Step, Task
from soctriage.agents.builtin_evidence import disposition_of, signals, weight_of_evidence
from soctriage.agents.builtin_signals import Signals, category_of, findings
from soctriage.agents.calibration import calibrated
from soctriage.agents.state import (
    DISPOSITIONS_AUTO_CLOSE,
    ActionPlan,
    EnrichmentPlan,
    ProposedAction,
    ToolRequest,
    TriageAssessment,
)
from soctriage.service.alert_entities import OBSERVABLES, alert_processes, pick
from soctriage.service.domain import Alert, Disposition, Severity, SeverityId, Verdict
from soctriage.tools.commandline import decode_powershell, indicators_in
from soctriage.tools.lineage import Lineage

NAME = "builtin"
MAX_INTEL_LOOKUPS = 8
MAX_ATTACK_LOOKUPS = 5


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
                for proc in alert_processes(alert):
                    if proc.name or proc.path:
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
            for _, lineage in findings(task, "process_lineage", Lineage):
                for indicator in indicators_in(lineage.decoded_powershell or "")[:MAX_INTEL_LOOKUPS]:
                    want("threat_intel_lookup", {"indicator": indicator})
        return Step(
            answer=EnrichmentPlan(calls=calls, final=final), reasoning={"model": NAME, "step": task.step}
        )

    async def decide(self, task: Task) -> Step[Verdict]:
        alert = task.alert
        s = signals(task)
        disposition, raw = disposition_of(task, s)
        # The rules give a raw confidence; the verdict carries the probability it is right (agents/calibration).
        confidence = calibrated(disposition, raw)
        severity = self._severity(alert, s, disposition)
        summary = f"{disposition.replace('_', ' ')}: {alert.title}"
        if alert.device and alert.device.hostname:
            summary += f" on {alert.device.hostname}"
        verdict = Verdict(
            disposition=disposition,
            severity=Severity.of(severity),
            confidence=confidence,
            techniques=tuple(sorted(s.techniques)),
            summary=summary,
            rationale="; ".join(s.reasons) or "no signal either way",
            evidence=tuple(sorted(s.evidence | {task.alert_seq})),
            recommended_actions=tuple(a.tool for a in self._actions(task, disposition, severity, s)),
        )
        reasoning = {"model": NAME, "score": s.score, "signals": s.reasons, "raw_confidence": raw}
        return Step(answer=verdict, reasoning=reasoning)

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
        actions = self._actions(task, verdict.disposition, int(verdict.severity.id), signals(task))
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


def independent_objection(task: Task) -> str | None:
    """Why the evidence rules out closing this case as benign, or None. The floor under every auto-close:
    whatever a model says, the builtin's own reading of the intel, lineage, techniques, injection findings and
    the vendor's verdict must not point to an attack, unless its structured benign facts settle the case."""
    s = signals(task)
    # Hints of benign software only keep the builtin from containing on its own; they lift no objection.
    s.benign_hints.clear()
    disposition, _ = disposition_of(task, s)
    if disposition in DISPOSITIONS_AUTO_CLOSE:
        return None
    if s.attack_evidence:
        return "independent evidence of an attack: " + "; ".join(s.attack_evidence)
    if disposition == "true_positive" or weight_of_evidence(task, s) is not None:
        # An uncorroborated detection is not enough for the builtin to call an attack, nor for a model to
        # close one: without a benign fact it goes to a human.
        return f"the weight of the evidence says attack (score {s.score}: {'; '.join(s.reasons)})"
    return None


# What threat intel is asked about, in the order it is asked (lookups stop at MAX_INTEL_LOOKUPS): what the EDR's
# normalizer collected first, then the hashes and destination the structured fields name.
_INTEL_FIELDS = (
    OBSERVABLES,
    "process.sha256",
    "file.sha256",
    "network.dst_ip",
    "network.domain",
    "network.url",
)
_INTEL_KINDS = frozenset({"ip", "domain", "url", "sha256", "sha1", "md5"})


def _indicators(alert: Alert) -> list[str]:
    """The indicators worth a threat-intel lookup: not the alert's own host (the intel service keeps every
    other internal address to local intel; it never sends one out)."""
    own = {alert.device.ip, alert.device.hostname} if alert.device else set()
    found = dict.fromkeys(str(e.value) for e in pick(alert, _INTEL_FIELDS, _INTEL_KINDS))
    return [v for v in found if v not in own]


def _offered(task: Task) -> set[str]:
    return {t["function"]["name"] for t in task.tools}


def _key(args: dict[str, Any]) -> str:
    return repr(sorted(args.items()))
