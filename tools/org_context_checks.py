"""The conditions of organisation-context entries (tools/org_context.py) checked against an alert's
structured fields: host, account, process path, parent path, signer, hash, source IP and time; free text is
never read."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, tzinfo
from typing import Literal

from pydantic import Field
from soctriage.service.alert_entities import url_host
from soctriage.service.domain import Alert, Frozen
from soctriage.tools.known_good_entries import KnownGoodMatch
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
    JumpHost,
    OrgContextFile,
    PhishingSimulation,
    Section,
    ServiceAccount,
    TimeWindow,
)

Role = Literal["process", "parent", "file"]


class ContextFact(Frozen):
    condition: str
    value: str = Field(description="the alert's value that met the condition")
    role: Role | None = Field(default=None, description="which of the alert's programs it was")


class AlertFacts:
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


def _program(entry: Identity | ServiceAccount | CiHost, facts: AlertFacts) -> Check | None:
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


def _accounts(globs: Sequence[str], facts: AlertFacts) -> Check | None:
    if not globs:
        return None
    for glob in globs:
        for form in facts.accounts:
            if account_glob_regex(glob).fullmatch(form):
                return "account", [ContextFact(condition="account", value=form)]
    return "account", None


def _hosts(globs: Sequence[str], facts: AlertFacts, condition: str = "host") -> Check | None:
    if not globs:
        return None
    hit = _host_matches(globs, facts.hostname)
    return condition, [ContextFact(condition="host", value=facts.hostname)] if hit else None


def _origin(hostnames: Sequence[str], ips: Sequence[str], facts: AlertFacts) -> Check | None:
    """The activity came from (or ran on) one of these machines: the alert's host, or its source IP."""
    if not (hostnames or ips):
        return None
    if _host_matches(hostnames, facts.hostname):
        return "origin", [ContextFact(condition="host", value=facts.hostname)]
    if _in_networks(facts.src_ip, ips):
        return "origin", [ContextFact(condition="src_ip", value=str(facts.src_ip))]
    return "origin", None


def _windows(windows: Sequence[TimeWindow], zone: tzinfo, facts: AlertFacts) -> Check | None:
    if not windows:
        return None
    when = facts.alert.time.astimezone(UTC)
    ok = any(window.contains(when, zone) for window in windows)
    return "time_window", [ContextFact(condition="time", value=when.isoformat())] if ok else None


def _known_good(refs: Sequence[str], facts: AlertFacts) -> Check | None:
    if not refs:
        return None
    wanted = {r.casefold() for r in refs}
    for match in facts.known_good:
        names = {match.entry_id.casefold(), *(t.strip().casefold() for t in (match.tool or "").split(" / "))}
        if names & wanted:
            return "program", [ContextFact(condition="known_good", value=match.entry_id)]
    return "program", None


def entry_checks(
    data: OrgContextFile, jump_hosts: Mapping[str, JumpHost], zone: tzinfo, facts: AlertFacts
) -> Iterator[tuple[Section, Entry, list[Check | None]]]:
    """Each entry of the file with the checks of its conditions on `facts`: None for a condition the entry does
    not set, else (condition, the facts that met it, or None when it does not hold)."""
    for admin in data.admin_tools:
        jumps = [jump_hosts[ref] for ref in admin.used_from]
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
    for scanner in data.scanners:
        yield (
            "scanners",
            scanner,
            [
                _origin(scanner.hostnames, scanner.ips, facts),
                _accounts(scanner.accounts, facts),
                _windows(scanner.windows, zone, facts),
            ],
        )
    for account in data.service_accounts:
        yield (
            "service_accounts",
            account,
            [_accounts(account.accounts, facts), _hosts(account.hosts, facts), _program(account, facts)],
        )
    for ci in data.ci_hosts:
        yield (
            "ci_hosts",
            ci,
            [_hosts(ci.hostnames, facts, "ci_host"), _accounts(ci.accounts, facts), _program(ci, facts)],
        )
    for change in data.change_windows:
        # A change window is context, not an identity: it only counts when its hosts and time both hold.
        yield (
            "change_windows",
            change,
            [_hosts(change.hosts, facts), _windows(change.windows, zone, facts)],
        )
    for sim in data.phishing_simulations:
        yield "phishing_simulations", sim, _phishing_checks(sim, facts)
    for gateway in data.web_gateways:
        yield "web_gateways", gateway, [_egress(gateway.egress_ips, facts)]
    for software in data.internal_software:
        yield "internal_software", software, _software_checks(software, facts)


def _phishing_checks(sim: PhishingSimulation, facts: AlertFacts) -> list[Check | None]:
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


def _egress(networks: Sequence[str], facts: AlertFacts) -> Check:
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


def _software_checks(software: InternalSoftware, facts: AlertFacts) -> list[Check | None]:
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
