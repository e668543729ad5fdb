"""The organisation context file: its sections and entries as validated models, and reading it so that
every error names the file, the line and the field (tools/data/org_context.example.yaml documents every
field). What an entry means for an alert is tools/org_context.py."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime, time, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator
from soctriage.service.config import ConfigError
from soctriage.service.domain import Frozen
from soctriage.tools.datafiles import yaml_line, yaml_problem
from soctriage.tools.known_good import KnownGoodTable
from soctriage.tools.matching import PathGlobs

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


class Entry(Frozen):
    id: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    name: str | None = None
    note: str | None = None


class Identity(Entry):
    """What a program is: every one of these that is set must hold for the same process (or its parent,
    or the alert's file)."""

    process_paths: PathGlobs = Field(default=(), description="path globs, as in known_good")
    signers: tuple[str, ...] = Field(default=(), description="signer names; need a valid signature")
    sha256: Sha256s = ()


class JumpHost(Entry):
    hostname: str
    ips: IpNetworks = ()


class AdminTool(Identity):
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


class Scanner(Entry):
    hostnames: tuple[str, ...] = ()
    ips: IpNetworks = ()
    accounts: tuple[str, ...] = ()
    windows: tuple[TimeWindow, ...] = Field(default=(), description="scan windows; empty means any time")

    @model_validator(mode="after")
    def _located(self) -> Scanner:
        if not (self.hostnames or self.ips):
            raise ValueError("a scanner needs hostnames or ips")
        return self


class ServiceAccount(Entry):
    accounts: tuple[str, ...] = Field(min_length=1)
    hosts: tuple[str, ...] = Field(default=(), description="host globs it runs on; empty means any")
    process_paths: PathGlobs = ()


class CiHost(Entry):
    hostnames: tuple[str, ...] = Field(min_length=1)
    accounts: tuple[str, ...] = ()
    process_paths: PathGlobs = ()


class ChangeWindow(Entry):
    hosts: tuple[str, ...] = Field(min_length=1, description="host globs; ['*'] for every host")
    windows: tuple[TimeWindow, ...] = Field(min_length=1)


class PhishingSimulation(Entry):
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


class WebGateway(Entry):
    egress_ips: IpNetworks = Field(min_length=1)


class InternalSoftware(Identity):
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


def read_org_context_file(path: Path, known_good: KnownGoodTable | None = None) -> OrgContextFile:
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
    return data


def _dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "<file>"


def _line_of(tree: yaml.Node, loc: Sequence[Any]) -> int:
    # The model's `from_` field is `from` in the file.
    return yaml_line(tree, ["from" if part == "from_" else part for part in loc]) or 1


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
