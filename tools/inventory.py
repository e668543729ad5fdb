"""Asset and identity context from an inventory YAML (Settings `inventory_path`).

The guard reads the same inventory to apply asset-criticality rules, so "what is DC01" has one answer.
A host or user that is not listed comes back with criticality/role "unknown", never an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError
from soctriage.service.config import ConfigError
from soctriage.service.domain import Frozen
from soctriage.tools.datafiles import bundled, yaml_problem
from soctriage.tools.tool_spec import ToolContext, ToolOutput, tool

Criticality = Literal["low", "medium", "high", "critical", "unknown"]
HostRole = Literal["domain_controller", "server", "workstation", "test", "network_device", "unknown"]

BUNDLED_INVENTORY = bundled("inventory.yaml")


class InventoryError(ConfigError):
    """The inventory file is malformed; the message names the file, the entry and the field."""


class Host(Frozen):
    hostname: str
    aliases: tuple[str, ...] = ()
    ip: str | None = None
    criticality: Criticality = "unknown"
    role: HostRole = "unknown"
    owner: str | None = None
    os: str | None = None
    business_unit: str | None = None
    tags: tuple[str, ...] = ()


class Identity(Frozen):
    name: str
    aliases: tuple[str, ...] = ()
    display_name: str | None = None
    department: str | None = None
    title: str | None = None
    privileged: bool = False
    service_account: bool = False
    groups: tuple[str, ...] = ()
    manager: str | None = None


class _InventoryFile(Frozen):
    hosts: tuple[Host, ...] = ()
    users: tuple[Identity, ...] = ()


def _user_keys(name: str) -> set[str]:
    """`CORP\\jdoe`, `jdoe@corp.example` and `jdoe` all name the same account."""
    name = name.strip().lower()
    keys = {name}
    if "\\" in name:
        keys.add(name.split("\\", 1)[1])
    if "@" in name:
        keys.add(name.split("@", 1)[0])
    return keys


class Inventory:
    def __init__(self, hosts: tuple[Host, ...] = (), users: tuple[Identity, ...] = ()) -> None:
        self._hosts: dict[str, Host] = {}
        for host in hosts:
            for key in (host.hostname, *host.aliases, host.ip):
                if key:
                    self._hosts[key.lower()] = host
        self._users: dict[str, Identity] = {}
        for user in users:
            for alias in (user.name, *user.aliases):
                for key in _user_keys(alias):
                    self._users[key] = user

    @classmethod
    def load(cls, path: Path) -> Inventory:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise InventoryError(f"{path}: cannot read inventory: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise InventoryError(yaml_problem(path, exc)) from exc
        try:
            parsed = _InventoryFile.model_validate(doc)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise InventoryError(f"{path}: {loc}: {err['msg']}") from exc
        return cls(parsed.hosts, parsed.users)

    def host(self, name: str) -> Host | None:
        key = name.strip().lower()
        # A FQDN from the EDR matches the short inventory name.
        return self._hosts.get(key) or self._hosts.get(key.split(".", 1)[0])

    def user(self, name: str) -> Identity | None:
        for key in _user_keys(name):
            if key in self._users:
                return self._users[key]
        return None


class AssetContextInput(Frozen):
    hostname: str = Field(min_length=1, max_length=255, description="host name, FQDN or IP from the case")


class AssetContext(ToolOutput):
    hostname: str
    known: bool
    criticality: Criticality
    role: HostRole
    owner: str | None = None
    ip: str | None = None
    os: str | None = None
    business_unit: str | None = None
    tags: tuple[str, ...] = ()

    def summary(self) -> str:
        if not self.known:
            return f"{self.hostname}: not in the inventory"
        owner = f", owner {self.owner}" if self.owner else ""
        return f"{self.hostname}: {self.role}, criticality {self.criticality}{owner}"

    def entities(self) -> tuple[str, ...]:
        return tuple(v for v in (self.hostname, self.ip, self.owner) if v)


@tool(tier="read", timeout_s=5.0, targets={"hostname": "host"})
async def asset_context(ctx: ToolContext, args: AssetContextInput) -> AssetContext:
    """Asset context for a host from the inventory: criticality (low/medium/high/critical), role (e.g.
    domain_controller, server, workstation, test), owner, OS and tags. Unlisted hosts are "unknown"."""
    host = ctx.connectors.inventory.host(args.hostname)
    if host is None:
        return AssetContext(hostname=args.hostname, known=False, criticality="unknown", role="unknown")
    return AssetContext(
        hostname=host.hostname,
        known=True,
        criticality=host.criticality,
        role=host.role,
        owner=host.owner,
        ip=host.ip,
        os=host.os,
        business_unit=host.business_unit,
        tags=host.tags,
    )


class IdentityContextInput(Frozen):
    username: str = Field(min_length=1, max_length=256, description="account name, DOMAIN\\name or UPN")


class IdentityContext(ToolOutput):
    username: str
    known: bool
    privileged: bool = False
    service_account: bool = False
    display_name: str | None = None
    department: str | None = None
    title: str | None = None
    groups: tuple[str, ...] = ()
    manager: str | None = None

    def summary(self) -> str:
        if not self.known:
            return f"{self.username}: not in the identity list"
        kind = ", service account" if self.service_account else ""
        return f"{self.username}: {'privileged' if self.privileged else 'not privileged'}{kind}"

    def entities(self) -> tuple[str, ...]:
        return (self.username,)


@tool(tier="read", timeout_s=5.0, targets={"username": "user"})
async def identity_context(ctx: ToolContext, args: IdentityContextInput) -> IdentityContext:
    """Identity context for a user account: privileged or not, service account, department, title, groups
    and manager. Unlisted accounts come back with known=false."""
    user = ctx.connectors.inventory.user(args.username)
    if user is None:
        return IdentityContext(username=args.username, known=False)
    return IdentityContext(
        username=user.name,
        known=True,
        privileged=user.privileged,
        service_account=user.service_account,
        display_name=user.display_name,
        department=user.department,
        title=user.title,
        groups=user.groups,
        manager=user.manager,
    )


TOOLS = [asset_context, identity_context]
