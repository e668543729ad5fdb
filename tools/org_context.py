"""Organisation context: what only the customer knows about its own environment, from one YAML file
(Settings `context_path`, SOCTRIAGE_CONTEXT_PATH; tools/data/org_context.example.yaml documents every field).

Sections: jump hosts, sanctioned admin tools (and the jump hosts and accounts that use them), scanner
appliances and their scan windows, service accounts, CI/build hosts, change windows, phishing-simulation
senders, the web gateway's egress IPs, and internal software. Every entry has an `id` the ledger cites.

An entry applies to an alert when every condition it sets holds on the alert's structured fields (host,
account, process path, parent path, signer, hash, source IP, time); free text is never read. An entry whose
identifying facts hold but whose context does not (the sanctioned tool from the wrong host, the service
account on an unexpected host, a binary at the internal software's path with another hash) is reported as a
near miss: that is evidence too. The file's schema is tools/org_context_file.py; each condition's check,
tools/org_context_checks.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field
from soctriage.service.domain import Alert, Frozen
from soctriage.tools.known_good import KnownGoodTable
from soctriage.tools.known_good_entries import KnownGoodMatch
from soctriage.tools.org_context_checks import AlertFacts, ContextFact, entry_checks
from soctriage.tools.org_context_file import OrgContextFile, Section, read_org_context_file
from soctriage.tools.tool_spec import ToolContext, ToolOutput, tool

# --- what the tool reports -----------------------------------------------------------------------------


class ContextHit(Frozen):
    section: Section
    entry_id: str
    name: str | None = None
    matched: tuple[ContextFact, ...] = ()
    unmet: tuple[str, ...] = Field(default=(), description="conditions that did not hold (near misses)")


class OrgContextReport(ToolOutput):
    configured: bool = Field(description="an organisation context file is loaded")
    source: str | None = None
    applies: tuple[ContextHit, ...] = ()
    near_misses: tuple[ContextHit, ...] = ()

    def summary(self) -> str:
        if not self.configured:
            return "no organisation context is configured"
        parts = [f"applies: {hit.section} {hit.entry_id}" for hit in self.applies]
        parts += [
            f"near miss: {hit.section} {hit.entry_id} ({'; '.join(hit.unmet)})" for hit in self.near_misses
        ]
        return ", ".join(parts) or "no entry applies"


# --- evaluation ----------------------------------------------------------------------------------------

# What identifies an entry of each section. A near miss needs it met: a sanctioned tool's account alone, or a
# change window's hosts alone, say nothing when the rest does not hold.
_IDENTIFYING: dict[str, frozenset[str]] = {
    "admin_tools": frozenset({"program"}),
    "scanners": frozenset({"origin", "account"}),
    "service_accounts": frozenset({"account"}),
    "ci_hosts": frozenset({"ci_host"}),
    "internal_software": frozenset({"program", "path"}),
}


class OrgContext:
    def __init__(self, data: OrgContextFile | None = None, source: str | None = None) -> None:
        self.data = data or OrgContextFile()
        self.source = source
        self.zone = ZoneInfo(self.data.timezone)
        self._jump = {j.id: j for j in self.data.jump_hosts}

    @property
    def configured(self) -> bool:
        return self.source is not None

    @classmethod
    def load(cls, path: Path, known_good: KnownGoodTable | None = None) -> OrgContext:
        """Parse and validate the file; every error names the file, the line and the field."""
        return cls(read_org_context_file(path, known_good), str(path))

    def evaluate(self, alert: Alert, known_good: Sequence[KnownGoodMatch] = ()) -> OrgContextReport:
        facts = AlertFacts(alert, known_good)
        applies: list[ContextHit] = []
        near: list[ContextHit] = []
        for section, entry, checks in entry_checks(self.data, self._jump, self.zone, facts):
            met = [c for c in checks if c is not None]
            if not met:
                continue
            matched = [fact for _, found in met if found for fact in found]
            unmet = [name for name, found in met if found is None]
            hit = ContextHit(
                section=section,
                entry_id=entry.id,
                name=entry.name,
                matched=tuple(matched),
                unmet=tuple(unmet),
            )
            if section == "phishing_simulations":
                self._phishing(hit, facts, applies, near)
            elif not unmet:
                applies.append(hit)
            elif _IDENTIFYING.get(section, frozenset()) & {name for name, found in met if found is not None}:
                near.append(hit)
        return OrgContextReport(
            configured=self.configured, source=self.source, applies=tuple(applies), near_misses=tuple(near)
        )

    def _phishing(
        self, hit: ContextHit, facts: AlertFacts, applies: list[ContextHit], near: list[ContextHit]
    ) -> None:
        """A simulation is known by where it comes from or links to; a condition the alert carries no value
        for is unknown rather than unmet, since a mail alert rarely carries both."""
        unknown = set()
        if facts.src_ip is None:
            unknown.add("sender_ip")
        if not facts.domains:
            unknown.add("domain")
        if not facts.emails:
            unknown.add("sender")
        unmet = tuple(u for u in hit.unmet if u not in unknown)
        anchored = any(f.condition in ("src_ip", "domain") for f in hit.matched)
        if anchored and not unmet:
            applies.append(hit.model_copy(update={"unmet": ()}))
        elif anchored:
            near.append(hit.model_copy(update={"unmet": unmet}))


# --- the read tool -------------------------------------------------------------------------------------


class OrgContextInput(Frozen):
    """No arguments: the lookup reads the case's alert."""


@tool(tier="read", timeout_s=5.0)
async def org_context(ctx: ToolContext, args: OrgContextInput) -> OrgContextReport:
    """The organisation's own context for the case's alert: which of its sanctioned admin tools, scanners,
    service accounts, CI hosts, change windows, phishing simulations, gateway egress IPs and internal
    software apply (by host, account, process path, signer, hash, parent, source IP and time), each with the
    entry id to cite; and near misses, where a known tool, account or program appears outside its
    sanctioned context."""
    known_good = ctx.connectors.known_good.match(ctx.alert)
    return ctx.connectors.org_context.evaluate(ctx.alert, known_good)


TOOLS = [org_context]
