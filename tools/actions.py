"""Response actions: the tools that change something, and the models their connectors share.

Tiers: `contain` is a bounded, containment-grade change that loses no data and locks no person out (isolate a
host, kill a process, quarantine a file, block an indicator, open a ticket); `destructive` affects people
(disable or re-enable an account). `create_ticket` is `contain` so it carries an idempotency key and is
recorded like any action, but the default policy allows it without approval and exempts it from the rate
limit.

Action inputs hold only what identifies the action, never free text, so the same action proposed twice with
different wording has the same args hash and therefore the same idempotency key.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator
from soctriage.service.domain import Frozen
from soctriage.tools.intel import IndicatorType, normalize_indicator
from soctriage.tools.tool_spec import ToolContext, ToolError, ToolOutput, spec_of, tool

ActionName = Literal[
    "isolate_host",
    "release_host",
    "kill_process",
    "quarantine_file",
    "block_indicator",
    "unblock_indicator",
    "disable_user",
    "enable_user",
    "create_ticket",
]

_HOSTNAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"
_SHA256 = r"^[0-9a-fA-F]{64}$"
_SHA1 = r"^[0-9a-fA-F]{40}$"


class HostInput(Frozen):
    hostname: str = Field(pattern=_HOSTNAME, description="host name from the case")


class KillProcessInput(Frozen):
    hostname: str = Field(pattern=_HOSTNAME, description="host the process runs on")
    pid: int = Field(ge=0, description="process id from the case")


class QuarantineFileInput(Frozen):
    hostname: str = Field(pattern=_HOSTNAME, description="host the file is on")
    sha256: str | None = Field(default=None, pattern=_SHA256, description="SHA-256 of the file")
    sha1: str | None = Field(default=None, pattern=_SHA1, description="SHA-1 of the file (Defender needs it)")

    @model_validator(mode="after")
    def _one_hash(self) -> QuarantineFileInput:
        if not (self.sha256 or self.sha1):
            raise ValueError("give sha256 or sha1 of the file")
        return self


class IndicatorInput(Frozen):
    indicator: str = Field(min_length=1, max_length=2048, description="hash, IP address, domain or URL")
    type: IndicatorType

    @model_validator(mode="after")
    def _indicator_is_its_type(self) -> IndicatorInput:
        # A domain blocked as a sha256 (or the reverse) would be a block that does nothing, or the wrong one.
        normalize_indicator(self.indicator, self.type)
        return self


class UserInput(Frozen):
    username: str = Field(
        min_length=1, max_length=256, pattern=r"^[^\s]+$", description="account from the case"
    )


class TicketInput(Frozen):
    title: str = Field(min_length=1, max_length=200)
    severity: Literal["low", "medium", "high", "critical"]
    summary: str = Field(min_length=1, max_length=10_000)


class ActionReceipt(ToolOutput):
    """What a connector did (or, for the simulator, would have done)."""

    action: ActionName
    connector: str
    target: str
    status: Literal["done", "simulated"]
    idempotency_key: str
    external_id: str | None = Field(default=None, description="the vendor's id for the action, device or IOC")
    duplicate: bool = Field(default=False, description="the connector had already done this key")
    detail: dict[str, Any] = Field(default_factory=dict)

    def summary(self) -> str:
        line = f"{self.action} {self.target}: {self.status} by {self.connector}"
        if self.external_id:
            line += f", id {self.external_id}"
        return line + (", already done under this key" if self.duplicate else "")


def action_target(action: ActionName, params: Frozen) -> str:
    """A short human-readable target for receipts and tables (`DC01`, `DC01:4242`, `sha256:…`)."""
    data = params.model_dump()
    if action == "kill_process":
        return f"{data['hostname']}:{data['pid']}"
    if action == "quarantine_file":
        return f"{data['hostname']}:{data.get('sha256') or data.get('sha1')}"
    if action in ("block_indicator", "unblock_indicator"):
        return f"{data['type']}:{data['indicator']}"
    if action == "create_ticket":
        return re.sub(r"\s+", " ", data["title"])[:80]
    return str(data.get("hostname") or data.get("username"))


async def _perform(
    ctx: ToolContext, action: ActionName, params: Frozen, *, ticketing: bool = False
) -> ActionReceipt:
    if ctx.idempotency_key is None:
        raise ToolError(f"{action} must be run through the tool runner (it supplies the idempotency key)")
    connector = ctx.connectors.ticketing if ticketing else ctx.connectors.response
    return await connector.perform(action, params, ctx.idempotency_key)


@tool(
    tier="contain",
    timeout_s=60.0,
    idempotent=True,
    rollback="release_host",
    targets={"hostname": "host"},
    contains=True,
)
async def isolate_host(ctx: ToolContext, args: HostInput) -> ActionReceipt:
    """Network-isolate a host through the EDR (it keeps talking to the EDR cloud only). Reversible with
    release_host."""
    return await _perform(ctx, "isolate_host", args)


@tool(
    tier="contain",
    timeout_s=60.0,
    idempotent=True,
    rollback="isolate_host",
    targets={"hostname": "host"},
    human_only=True,
)
async def release_host(ctx: ToolContext, args: HostInput) -> ActionReceipt:
    """Lift network isolation of a host (the rollback of isolate_host)."""
    return await _perform(ctx, "release_host", args)


@tool(
    tier="contain",
    timeout_s=60.0,
    idempotent=True,
    targets={"hostname": "host", "pid": "process"},
    contains=True,
)
async def kill_process(ctx: ToolContext, args: KillProcessInput) -> ActionReceipt:
    """Terminate a running process on a host by pid. Cannot be rolled back (the program can be started
    again)."""
    return await _perform(ctx, "kill_process", args)


@tool(
    tier="contain",
    timeout_s=60.0,
    idempotent=True,
    targets={"hostname": "host", "sha256": "file", "sha1": "file"},
    contains=True,
)
async def quarantine_file(ctx: ToolContext, args: QuarantineFileInput) -> ActionReceipt:
    """Stop processes of a file and move it to the EDR quarantine on a host (restorable from the EDR
    console)."""
    return await _perform(ctx, "quarantine_file", args)


@tool(
    tier="contain",
    timeout_s=60.0,
    idempotent=True,
    rollback="unblock_indicator",
    targets={"indicator": "indicator"},
    contains=True,
)
async def block_indicator(ctx: ToolContext, args: IndicatorInput) -> ActionReceipt:
    """Add a hash, IP, domain or URL to the EDR block list. Reversible with unblock_indicator."""
    return await _perform(ctx, "block_indicator", args)


@tool(
    tier="contain",
    timeout_s=60.0,
    idempotent=True,
    rollback="block_indicator",
    targets={"indicator": "indicator"},
    human_only=True,
)
async def unblock_indicator(ctx: ToolContext, args: IndicatorInput) -> ActionReceipt:
    """Remove an indicator from the EDR block list (the rollback of block_indicator)."""
    return await _perform(ctx, "unblock_indicator", args)


@tool(
    tier="destructive",
    timeout_s=60.0,
    idempotent=True,
    rollback="enable_user",
    targets={"username": "user"},
    contains=True,
)
async def disable_user(ctx: ToolContext, args: UserInput) -> ActionReceipt:
    """Disable a user account so it can no longer sign in. Reversible with enable_user."""
    return await _perform(ctx, "disable_user", args)


@tool(
    tier="destructive",
    timeout_s=60.0,
    idempotent=True,
    rollback="disable_user",
    targets={"username": "user"},
    human_only=True,
)
async def enable_user(ctx: ToolContext, args: UserInput) -> ActionReceipt:
    """Re-enable a disabled user account (the rollback of disable_user)."""
    return await _perform(ctx, "enable_user", args)


@tool(tier="contain", timeout_s=30.0, idempotent=False)
async def create_ticket(ctx: ToolContext, args: TicketInput) -> ActionReceipt:
    """Open a ticket for human follow-up with a title, severity and summary of the case."""
    return await _perform(ctx, "create_ticket", args, ticketing=True)


def proposable_actions() -> tuple[str, ...]:
    """The response actions an agent may propose, in the order they are listed to it: every action except
    those that undo containment, which only a human may ask for."""
    return tuple(spec.name for spec in map(spec_of, TOOLS) if not spec.human_only)


TOOLS = [
    isolate_host,
    release_host,
    kill_process,
    quarantine_file,
    block_indicator,
    unblock_indicator,
    disable_user,
    enable_user,
    create_ticket,
]
