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
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator
from soctriage.service.config import ConfigError
from soctriage.service.domain import Alert, Frozen
from soctriage.tools.datafiles import yaml_problem
from soctriage.tools.known_good import (
    KnownGoodMatch,
    KnownGoodTable,
    PathGlobs,
    account_forms,
    account_glob_regex,
    canonical_path,
    path_glob_regex,
    same_signer,
)
from soctriage.tools.registry import ToolContext, tool
from soctriage.tools.scope import url_host

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Section = Literal[
    "admin_tools",
    "scanners",
    "service_accounts",
    "ci_hosts",
    "change_windows",
    "phishing_simulations",
    "web_gateways",
    "internal_software",
]
Role = Literal["process", "parent", "file"]


class OrgContextError(ConfigError):
    """The context file is malformed; the message names the file, the line and the field."""


# --- field types ---------------------------------------------------------------------------------------


def _ip_networks(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network (CIDR)") from None
    return tuple(values)


def _sha256s(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError(f"{value!r} is not a sha256 (64 hex digits)")
    return tuple(v.lower() for v in values)


IpNetworks = Annotated[tuple[str, ...], AfterValidator(_ip_networks)]
Sha256s = Annotated[tuple[str, ...], AfterValidator(_sha256s)]


class TimeWindow(Frozen):
    """Recurring (`days` + `start`/`end`, local to the file's timezone; an `end` before `start` runs past
    midnight) or one-off (`from`/`to`, ISO datetimes; without an offset they are local too)."""

    days: tuple[Day, ...] = Field(default=(), description="empty means every day")
    start: time | None = None
    end: time | None = None
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML reads an unquoted 8:30 as 510 (base 60)
            raise ValueError("write clock times in quotes, e.g. '08:30'")
        return value

    @model_validator(mode="after")
    def _shape(self) -> TimeWindow:
        recurring = self.start is not None and self.end is not None
        one_off = self.from_ is not None and self.to is not None
        if recurring == one_off:
            raise ValueError("give either start and end (recurring, with optional days) or from and to")
        if one_off and self.days:
            raise ValueError("days only apply to recurring windows")
        return self

    def contains(self, when: datetime, zone: tzinfo) -> bool:
        if self.from_ is not None and self.to is not None:
            start, end = (v if v.tzinfo else v.replace(tzinfo=zone) for v in (self.from_, self.to))
            return start <= when <= end
        assert self.start is not None and self.end is not None
        local = when.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        day = DAYS[local.weekday()]
        if self.start <= self.end:
            return self.start <= clock <= self.end and (not self.days or day in self.days)
        # Past midnight: the window belongs to the day it started on.
        if clock >= self.start:
            return not self.days or day in self.days
        yesterday = DAYS[(local.weekday() - 1) % 7]
        return clock <= self.end and (not self.days or yesterday in self.days)


class _Entry(Frozen):
    id: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    name: str | None = None
    note: str | None = None


class _Identity(_Entry):
    """What a program is: every one of these that is set must hold for the same process (or its parent,
    or the alert's file)."""

    process_paths: PathGlobs = Field(default=(), description="path globs, as in known_good")
    signers: tuple[str, ...] = Field(default=(), description="signer names; need a valid signature")
    sha256: Sha256s = ()


class JumpHost(_Entry):
    hostname: str
    ips: IpNetworks = ()


class AdminTool(_Identity):
    known_good: tuple[str, ...] = Field(
        default=(), description="known-good entry ids or tool names (e.g. a LOLRMM tool) this sanctions"
    )
    used_from: tuple[str, ...] = Field(default=(), description="jump host ids; empty means from anywhere")
    accounts: tuple[str, ...] = Field(default=(), description="account globs; empty means any account")

    @model_validator(mode="after")
    def _identified(self) -> AdminTool:
        if not (self.process_paths or self.signers or self.sha256 or self.known_good):
            raise ValueError("an admin tool needs process_paths, signers, sha256 or known_good")
        return self


class Scanner(_Entry):
    hostnames: tuple[str, ...] = ()
    ips: IpNetworks = ()
    accounts: tuple[str, ...] = ()
    windows: tuple[TimeWindow, ...] = Field(default=(), description="scan windows; empty means any time")

    @model_validator(mode="after")
    def _located(self) -> Scanner:
        if not (self.hostnames or self.ips):
            raise ValueError("a scanner needs hostnames or ips")
        return self


class ServiceAccount(_Entry):
    accounts: tuple[str, ...] = Field(min_length=1)
    hosts: tuple[str, ...] = Field(default=(), description="host globs it runs on; empty means any")
    process_paths: PathGlobs = ()


class CiHost(_Entry):
    hostnames: tuple[str, ...] = Field(min_length=1)
    accounts: tuple[str, ...] = ()
    process_paths: PathGlobs = ()


class ChangeWindow(_Entry):
    hosts: tuple[str, ...] = Field(min_length=1, description="host globs; ['*'] for every host")
    windows: tuple[TimeWindow, ...] = Field(min_length=1)


class PhishingSimulation(_Entry):
    sender_ips: IpNetworks = ()
    domains: tuple[str, ...] = Field(default=(), description="landing/tracking domains; *.x for subdomains")
    senders: tuple[str, ...] = Field(
        default=(), description="sender address globs; they only narrow (a From header is easy to forge)"
    )

    @model_validator(mode="after")
    def _anchored(self) -> PhishingSimulation:
        if not (self.sender_ips or self.domains):
            raise ValueError(
                "a phishing simulation needs sender_ips or domains (senders alone are forgeable)"
            )
        return self


class WebGateway(_Entry):
    egress_ips: IpNetworks = Field(min_length=1)


class InternalSoftware(_Identity):
    @model_validator(mode="after")
    def _identified(self) -> InternalSoftware:
        if not (self.process_paths or self.signers or self.sha256):
            raise ValueError("internal software needs process_paths, signers or sha256")
        return self


class OrgContextFile(Frozen):
    timezone: str = Field(default="UTC", description="IANA zone the recurring windows are read in")
    jump_hosts: tuple[JumpHost, ...] = ()
    admin_tools: tuple[AdminTool, ...] = ()
    scanners: tuple[Scanner, ...] = ()
    service_accounts: tuple[ServiceAccount, ...] = ()
    ci_hosts: tuple[CiHost, ...] = ()
    change_windows: tuple[ChangeWindow, ...] = ()
    phishing_simulations: tuple[PhishingSimulation, ...] = ()
    web_gateways: tuple[WebGateway, ...] = ()
    internal_software: tuple[InternalSoftware, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @model_validator(mode="after")
    def _references(self) -> OrgContextFile:
        jump_ids = {j.id for j in self.jump_hosts}
        for index, tool_entry in enumerate(self.admin_tools):
            for ref in tool_entry.used_from:
                if ref not in jump_ids:
                    raise _located(("admin_tools", index, "used_from"), f"no jump host has id {ref!r}")
        return self


class _LocatedError(ValueError):
    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _located(loc: tuple[Any, ...], message: str) -> _LocatedError:
    return _LocatedError(loc, message)


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


class OrgContextReport(Frozen):
    configured: bool = Field(description="an organisation context file is loaded")
    source: str | None = None
    applies: tuple[ContextHit, ...] = ()
    near_misses: tuple[ContextHit, ...] = ()


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


def _program(entry: _Identity | ServiceAccount | CiHost, facts: _Facts) -> Check | None:
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
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise OrgContextError(f"{path}: cannot read organisation context: {exc.strerror or exc}") from exc
        try:
            doc = yaml.safe_load(text) or {}
            tree = yaml.compose(text)
        except yaml.YAMLError as exc:
            raise OrgContextError(yaml_problem(path, exc)) from exc
        if not isinstance(doc, dict):
            raise OrgContextError(f"{path}:1: the file must be a mapping of sections")
        try:
            data = OrgContextFile.model_validate(doc)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = tuple(error["loc"])
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, _LocatedError):
                loc = cause.loc
            message = str(error["msg"]).removeprefix("Value error, ")
            raise OrgContextError(f"{path}:{_line_of(tree, loc)}: {_dotted(loc)}: {message}") from exc
        if known_good is not None:
            _check_known_good(path, tree, data, known_good)
        return cls(data, str(path))

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

    def _checks(self, facts: _Facts) -> Iterable[tuple[Section, _Entry, list[Check | None]]]:
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


def _dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "<file>"


def _line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int:
    """The line (1-based) of the deepest YAML node on the path `loc`."""
    line = (node.start_mark.line + 1) if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            key = "from" if part == "from_" else part
            child = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if child is None:  # an unknown key: point at the key itself
                child = next((k for k, _ in node.value if getattr(k, "value", None) == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _check_known_good(path: Path, tree: yaml.Node, data: OrgContextFile, table: KnownGoodTable) -> None:
    tools = {
        name.strip().casefold()
        for entry in table.entries.values()
        if entry.tool
        for name in entry.tool.split(" / ")
    }
    for index, admin in enumerate(data.admin_tools):
        for position, ref in enumerate(admin.known_good):
            if table.get(ref) is None and ref.casefold() not in tools:
                loc = ("admin_tools", index, "known_good", position)
                raise OrgContextError(
                    f"{path}:{_line_of(tree, loc)}: {_dotted(loc)}: {ref!r} is neither a known-good entry id"
                    " nor a tool named in the known-good table"
                )


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
