"""Organisation context: what only the customer knows about its own environment, from one YAML file
(Settings `context_path`, SOCTRIAGE_CONTEXT_PATH; tools/data/org_context.example.yaml documents every field).

Sections: jump hosts, sanctioned admin tools (and the jump hosts and accounts that use them), scanner
appliances and their scan windows, service accounts, CI/build hosts, change windows, phishing-simulation
senders, the web gateway's egress IPs, and internal software. Every entry has an `id` the ledger cites.

An entry applies to an alert when every condition it sets holds on the alert's structured fields (host,
account, process path, parent path, signer, hash, source IP, time); free text is never read. An entry whose
identifying facts hold but whose context does not (the sanctioned tool from the wrong host, the service
account on an unexpected host, a binary at the internal software's path with another hash) is reported as a
near miss: that is evidence too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field
from soctriage.service.alert_entities import url_host
from soctriage.service.domain import Alert, Frozen
from soctriage.tools.known_good import KnownGoodMatch, KnownGoodTable
from soctriage.tools.matching import (
    account_forms,
    account_glob_regex,
    canonical_path,
    path_glob_regex,
    same_signer,
)
from soctriage.tools.org_context_file import (
    CiHost,
    Entry,
    Identity,
    InternalSoftware,
    OrgContextFile,
    PhishingSimulation,
    Section,
    ServiceAccount,
    TimeWindow,
    read_org_context_file,
)
from soctriage.tools.tool_spec import ToolContext, ToolOutput, tool

Role = Literal["process", "parent", "file"]


# --- what the tool reports -----------------------------------------------------------------------------


class ContextFact(Frozen):
    condition: str
    value: str = Field(description="the alert's value that met the condition")
    role: Role | None = Field(default=None, description="which of the alert's programs it was")


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


class _Facts:
    """The alert's structured values, canonicalised once."""

    def __init__(self, alert: Alert, known_good: Sequence[KnownGoodMatch]) -> None:
        self.alert = alert
        self.known_good = known_good
        proc = alert.process
        parent = proc.parent if proc else None
        self.programs: list[tuple[Role, str | None, str | None, bool | None, str | None]] = []
        for role, item in (("process", proc), ("parent", parent), ("file", alert.file)):
            if item is not None:
                found = canonical_path(item.path)
                self.programs.append(
                    (role, found[0] if found else None, item.signer, item.signature_valid, item.sha256)  # type: ignore[arg-type]
                )
        self.accounts = account_forms(alert.user.name, alert.user.domain) if alert.user else ()
        self.hostname = (alert.device.hostname or "").strip() if alert.device else ""
        self.src_ip = alert.network.src_ip if alert.network else None
        self.domains = [
            d.lower().rstrip(".")
            for d in (
                alert.network.domain if alert.network else None,
                url_host(alert.network.url) if alert.network else None,
            )
            if d
        ]
        self.emails = [o.value for o in alert.observables if o.type == "email"]


Check = tuple[str, list[ContextFact] | None]  # (condition, facts when met / None when not met)


def _host_matches(globs: Iterable[str], hostname: str) -> str | None:
    if not hostname:
        return None
    short = hostname.split(".", 1)[0]
    for glob in globs:
        pattern = account_glob_regex(glob)
        if pattern.fullmatch(hostname) or pattern.fullmatch(short):
            return glob
    return None


def _in_networks(ip: str | None, networks: Iterable[str]) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


def _program(entry: Identity | ServiceAccount | CiHost, facts: _Facts) -> Check | None:
    """The identity conditions, held together by one of the alert's programs."""
    paths = entry.process_paths
    signers = getattr(entry, "signers", ())
    hashes = getattr(entry, "sha256", ())
    if not (paths or signers or hashes):
        return None
    for role, path, signer, valid, sha256 in facts.programs:
        found: list[ContextFact] = []
        if paths:
            hit = next((g for g in paths if path and path_glob_regex(g).fullmatch(path)), None)
            if hit is None:
                continue
            found.append(ContextFact(condition="process_path", value=str(path), role=role))
        pinned = bool(hashes) and bool(sha256) and str(sha256).lower() in hashes
        if hashes and not pinned:
            continue
        if signers:
            named = same_signer(signer, valid, signers)
            # A signer the EDR did not report is not held against a program whose hash is pinned; a signer
            # it did report (or a signature it called invalid) must match.
            if named is None and not (pinned and signer is None and valid is not False):
                continue
            if named is not None:
                found.append(ContextFact(condition="signer", value=str(signer), role=role))
        if pinned:
            found.append(ContextFact(condition="sha256", value=str(sha256), role=role))
        return "program", found
    return "program", None


def _accounts(globs: Sequence[str], facts: _Facts) -> Check | None:
    if not globs:
        return None
    for glob in globs:
        for form in facts.accounts:
            if account_glob_regex(glob).fullmatch(form):
                return "account", [ContextFact(condition="account", value=form)]
    return "account", None


def _hosts(globs: Sequence[str], facts: _Facts, condition: str = "host") -> Check | None:
    if not globs:
        return None
    hit = _host_matches(globs, facts.hostname)
    return condition, [ContextFact(condition="host", value=facts.hostname)] if hit else None


def _origin(hostnames: Sequence[str], ips: Sequence[str], facts: _Facts) -> Check | None:
    """The activity came from (or ran on) one of these machines: the alert's host, or its source IP."""
    if not (hostnames or ips):
        return None
    if _host_matches(hostnames, facts.hostname):
        return "origin", [ContextFact(condition="host", value=facts.hostname)]
    if _in_networks(facts.src_ip, ips):
        return "origin", [ContextFact(condition="src_ip", value=str(facts.src_ip))]
    return "origin", None


def _windows(windows: Sequence[TimeWindow], zone: tzinfo, facts: _Facts) -> Check | None:
    if not windows:
        return None
    when = facts.alert.time.astimezone(UTC)
    ok = any(window.contains(when, zone) for window in windows)
    return "time_window", [ContextFact(condition="time", value=when.isoformat())] if ok else None


def _known_good(refs: Sequence[str], facts: _Facts) -> Check | None:
    if not refs:
        return None
    wanted = {r.casefold() for r in refs}
    for match in facts.known_good:
        names = {match.entry_id.casefold(), *(t.strip().casefold() for t in (match.tool or "").split(" / "))}
        if names & wanted:
            return "program", [ContextFact(condition="known_good", value=match.entry_id)]
    return "program", None


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
        facts = _Facts(alert, known_good)
        applies: list[ContextHit] = []
        near: list[ContextHit] = []
        for section, entry, checks in self._checks(facts):
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
        self, hit: ContextHit, facts: _Facts, applies: list[ContextHit], near: list[ContextHit]
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

    def _checks(self, facts: _Facts) -> Iterable[tuple[Section, Entry, list[Check | None]]]:
        d = self.data
        for admin in d.admin_tools:
            jumps = [self._jump[ref] for ref in admin.used_from]
            yield (
                "admin_tools",
                admin,
                [
                    _program(admin, facts),
                    _known_good(admin.known_good, facts),
                    _origin([j.hostname for j in jumps], [ip for j in jumps for ip in j.ips], facts),
                    _accounts(admin.accounts, facts),
                ],
            )
        for scanner in d.scanners:
            yield (
                "scanners",
                scanner,
                [
                    _origin(scanner.hostnames, scanner.ips, facts),
                    _accounts(scanner.accounts, facts),
                    _windows(scanner.windows, self.zone, facts),
                ],
            )
        for account in d.service_accounts:
            yield (
                "service_accounts",
                account,
                [_accounts(account.accounts, facts), _hosts(account.hosts, facts), _program(account, facts)],
            )
        for ci in d.ci_hosts:
            yield (
                "ci_hosts",
                ci,
                [_hosts(ci.hostnames, facts, "ci_host"), _accounts(ci.accounts, facts), _program(ci, facts)],
            )
        for change in d.change_windows:
            # A change window is context, not an identity: it only counts when its hosts and time both hold.
            yield (
                "change_windows",
                change,
                [_hosts(change.hosts, facts), _windows(change.windows, self.zone, facts)],
            )
        for sim in d.phishing_simulations:
            yield "phishing_simulations", sim, _phishing_checks(sim, facts)
        for gateway in d.web_gateways:
            yield "web_gateways", gateway, [_egress(gateway.egress_ips, facts)]
        for software in d.internal_software:
            yield "internal_software", software, _software_checks(software, facts)


def _phishing_checks(sim: PhishingSimulation, facts: _Facts) -> list[Check | None]:
    checks: list[Check | None] = []
    if sim.sender_ips:
        ok = _in_networks(facts.src_ip, sim.sender_ips)
        checks.append(
            ("sender_ip", [ContextFact(condition="src_ip", value=str(facts.src_ip))] if ok else None)
        )
    if sim.domains:
        hit = next((d for d in facts.domains if _domain_matches(d, sim.domains)), None)
        checks.append(("domain", [ContextFact(condition="domain", value=hit)] if hit else None))
    if sim.senders:
        email = next(
            (e for e in facts.emails if any(account_glob_regex(g).fullmatch(e) for g in sim.senders)), None
        )
        checks.append(("sender", [ContextFact(condition="sender", value=email)] if email else None))
    return checks


def _domain_matches(domain: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*.") and domain.endswith(pattern[1:]):
            return True
        if domain == pattern:
            return True
    return False


def _egress(networks: Sequence[str], facts: _Facts) -> Check:
    alert = facts.alert
    candidates = [
        ("src_ip", alert.network.src_ip if alert.network else None),
        ("dst_ip", alert.network.dst_ip if alert.network else None),
        ("device_ip", alert.device.ip if alert.device else None),
    ]
    for name, ip in candidates:
        if _in_networks(ip, networks):
            return "egress_ip", [ContextFact(condition=name, value=str(ip))]
    return "egress_ip", None


def _software_checks(software: InternalSoftware, facts: _Facts) -> list[Check | None]:
    """Internal software is named by its path; its signer and hash must then hold for that same program,
    so a look-alike at the right path with another hash is a near miss, not a match."""
    whole = _program(software, facts)
    if whole is not None and whole[1] is not None:
        return [whole]
    if software.process_paths and (software.signers or software.sha256):
        located = _program(InternalSoftware(id=software.id, process_paths=software.process_paths), facts)
        if located is not None and located[1] is not None:
            return [("path", located[1]), whole]
    return [whole]


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
