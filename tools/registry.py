"""Tool registry: the registered tools and the runner that never raises for tool failure.

The runner validates a call against the tool's input model (tools/tool_spec.py), enforces the guard's decision
for side-effecting tools, applies the timeout and the idempotency key, and turns every failure into a
`ToolOutcome` the graph writes to the ledger.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError
from soctriage.service.domain import Frozen, utc_now
from soctriage.service.ledger_events import ToolResultRecorded
from soctriage.tools.scope import ToolFacts
from soctriage.tools.tool_spec import (
    ConnectorError,
    RegistryError,
    RiskTier,
    ToolContext,
    ToolError,
    ToolOutput,
    ToolSpec,
    args_hash,
    idempotency_key,
    spec_of,
)

if TYPE_CHECKING:
    from soctriage.tools.guard import Approval, GuardDecision

OutcomeStatus = Literal["ok", "error", "simulated", "duplicate", "refused"]
ErrorKind = Literal["unknown_tool", "invalid_args", "timeout", "connector", "tool", "unauthorized"]


class ToolCall(Frozen):
    """One call the model (or the builtin analyst) asks for."""

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    call_id: str | None = Field(default=None, description="the model's tool-call id, when it gave one")


class ToolOutcome(Frozen):
    """The result of one run: what the graph writes as `tool_result` (and `action_executed` when executed)."""

    case_id: str
    tool: str
    tier: RiskTier | None
    args: dict[str, Any]
    args_hash: str
    idempotency_key: str | None = None
    status: OutcomeStatus
    error_kind: ErrorKind | None = None
    error: str | None = None
    output: dict[str, Any] | None = None
    entities: tuple[str, ...] = ()
    confirmed: tuple[str, ...] = Field(default=(), description="entities the tool confirmed as threats")
    rollback: ToolCall | None = None
    started_at: datetime
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def executed(self) -> bool:
        """A side effect happened in this run (the graph then writes `action_executed`)."""
        return self.status == "ok" and self.tier not in (None, "read")

    def ledger_event(self, action_id: str | None = None) -> ToolResultRecorded:
        """The `tool_result` entry of this run (the case is the entry's own), of response action
        `action_id` when it is one."""
        payload = self.model_dump(mode="json", exclude={"case_id"}, exclude_none=True)
        return ToolResultRecorded.model_validate(
            payload if action_id is None else {"action_id": action_id, **payload}
        )


ExecutedKeys = Callable[[str], bool]


class Registry:
    def __init__(self, tools: Iterable[Callable[..., Any] | ToolSpec] = ()) -> None:
        self._specs: dict[str, ToolSpec] = {}
        for item in tools:
            self.register(item)
        self.check_rollbacks()

    def register(self, fn_or_spec: Callable[..., Any] | ToolSpec) -> ToolSpec:
        spec = spec_of(fn_or_spec)
        if spec.name in self._specs:
            raise RegistryError(f"tool {spec.name!r} is registered twice")
        self._specs[spec.name] = spec
        return spec

    def check_rollbacks(self) -> None:
        for spec in self._specs.values():
            if spec.rollback is None:
                continue
            other = self._specs.get(spec.rollback)
            if other is None:
                raise RegistryError(f"tool {spec.name!r}: rollback tool {spec.rollback!r} is not registered")
            if other.input_model is not spec.input_model:
                raise RegistryError(
                    f"tool {spec.name!r}: rollback {other.name!r} must take the same input model"
                )

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def get(self, name: str) -> ToolSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown tool {name!r}; known: {', '.join(sorted(self._specs))}") from None

    def names(self, tier: RiskTier | None = None) -> list[str]:
        return [n for n, s in self._specs.items() if tier is None or s.tier == tier]

    def specs(self) -> list[ToolSpec]:
        return list(self._specs.values())

    def output(self, tool: str, output: Mapping[str, Any]) -> ToolOutput:
        """The output of a successful run of `tool` as its model again, from the JSON the ledger and the graph
        state keep; raises `KeyError` for an unknown tool and `ValidationError` for an output it did not
        write."""
        return self.get(tool).output_model.model_validate(output)

    def agent_tools(self, *tiers: RiskTier) -> list[str]:
        """The tools of `tiers` an agent may be offered: every one but those only a human may ask for."""
        return [n for n, s in self._specs.items() if s.tier in tiers and not s.human_only]

    def facts(
        self,
        tool: str,
        args: Mapping[str, Any],
        *,
        found: Iterable[str] = (),
        confirmed: Iterable[str] = (),
        seq: int | None = None,
    ) -> ToolFacts:
        """What a result of `tool(args)` means for the case's scope (`soctriage.tools.scope`)."""
        spec = self._specs.get(tool)
        # An unknown tool is about nothing we can check, so what it reports never widens the scope.
        subjects = tuple(v for _, _, v in spec.target_values(args)) if spec else ("?",)
        return ToolFacts(tool, subjects, tuple(found), tuple(confirmed), seq)

    def schemas(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        return [self.get(n).schema() for n in (self._specs if names is None else names)]

    def openai_tools(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The tools as OpenAI Chat Completions `tools=[{"type": "function", ...}]` entries."""
        return [self.get(n).openai_tool() for n in (self._specs if names is None else names)]

    def rollback_call(self, call: ToolCall) -> ToolCall | None:
        spec = self.get(call.tool)
        return None if spec.rollback is None else ToolCall(tool=spec.rollback, args=dict(call.args))

    async def run(
        self,
        ctx: ToolContext,
        name: str,
        args: Mapping[str, Any],
        *,
        decision: GuardDecision | None = None,
        approval: Approval | None = None,
        executed_keys: ExecutedKeys | None = None,
        now: datetime | None = None,
    ) -> ToolOutcome:
        """Run one tool call. Side-effecting tools run only under a matching guard decision (and approval when
        the decision asks for one), at most once per idempotency key; nothing here raises for tool failure."""
        started = utc_now()
        clock = time.perf_counter()
        raw = dict(args)

        def outcome(status: OutcomeStatus, **fields: Any) -> ToolOutcome:
            fields.setdefault("args", raw)
            if "args_hash" not in fields:  # not setdefault: hashing the arguments again is not free
                fields["args_hash"] = args_hash(fields["args"])
            return ToolOutcome(
                case_id=ctx.case_id,
                tool=name,
                status=status,
                started_at=started,
                duration_ms=round((time.perf_counter() - clock) * 1000, 3),
                **fields,
            )

        if name not in self._specs:
            return outcome("error", tier=None, error_kind="unknown_tool", error=f"unknown tool {name!r}")
        spec = self._specs[name]
        try:
            model = spec.input_model.model_validate(raw)
        except ValidationError as exc:
            return outcome(
                "error", tier=spec.tier, error_kind="invalid_args", error=describe_validation(name, exc)
            )
        norm = model.model_dump(mode="json")
        digest = args_hash(norm)
        key = idempotency_key(ctx.case_id, name, digest) if spec.side_effecting else None
        common: dict[str, Any] = {
            "tier": spec.tier,
            "args": norm,
            "args_hash": digest,
            "idempotency_key": key,
        }
        refusal = _authorize(spec, ctx, digest, norm, decision, approval, now or utc_now())
        if refusal:
            return outcome("refused", error_kind="unauthorized", error=refusal, **common)
        rollback = self.rollback_call(ToolCall(tool=name, args=norm))
        if spec.side_effecting:
            if ctx.dry_run or (decision is not None and decision.dry_run):
                return outcome(
                    "simulated", output={"would_run": name, "args": norm}, rollback=rollback, **common
                )
            if executed_keys is not None and key is not None and executed_keys(key):
                return outcome("duplicate", error="already executed under this idempotency key", **common)
        call_ctx = dataclasses.replace(ctx, idempotency_key=key)
        try:
            # A timeout scope, not wait_for: wait_for wraps every call in a task of its own.
            async with asyncio.timeout(spec.timeout_s):
                result = await _invoke(spec, call_ctx, model)
        except TimeoutError:
            return outcome(
                "error", error_kind="timeout", error=f"{name} timed out after {spec.timeout_s:g}s", **common
            )
        except ConnectorError as exc:
            return outcome("error", error_kind="connector", error=f"{name}: {exc}", **common)
        except ToolError as exc:
            return outcome("error", error_kind="tool", error=f"{name}: {exc}", **common)
        except Exception as exc:  # a tool bug must not take the case down; the ledger records it
            return outcome(
                "error", error_kind="tool", error=f"{name} failed: {type(exc).__name__}: {exc}", **common
            )
        if not isinstance(result, spec.output_model):
            return outcome(
                "error", error_kind="tool", error=f"{name} returned {type(result).__name__}", **common
            )
        return outcome(
            "ok",
            output=result.model_dump(mode="json"),
            entities=result.entities(),
            confirmed=result.confirmed(),
            rollback=rollback if spec.side_effecting else None,
            **common,
        )


def describe_validation(tool_name: str, exc: ValidationError) -> str:
    """One line per bad field: `isolate_host.hostname: Field required`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        parts.append(f"{tool_name}.{loc}: {err['msg']}")
    return "invalid arguments: " + "; ".join(parts)


def _authorize(
    spec: ToolSpec,
    ctx: ToolContext,
    digest: str,
    norm: dict[str, Any],
    decision: GuardDecision | None,
    approval: Approval | None,
    now: datetime,
) -> str | None:
    """Why this call may not run, or None. Read tools run without a decision; a deny still stops them."""
    from soctriage.tools.guard import check_approval

    if decision is None:
        return f"{spec.name} has side effects and needs a guard decision" if spec.side_effecting else None
    if (decision.case_id, decision.tool, decision.args_hash) != (ctx.case_id, spec.name, digest):
        return "the guard decision was made for another case, tool or arguments"
    if decision.decision == "deny":
        return f"denied by guard: {decision.reason}"
    if decision.decision == "needs_approval":
        if approval is None:
            return "needs approval and none was given"
        check = check_approval(approval, ctx.case_id, spec.name, norm, now)
        if not check.ok:
            return f"approval not valid: {check.reason}"
    return None


async def _invoke(spec: ToolSpec, ctx: ToolContext, model: BaseModel) -> Any:
    call_args = (ctx, model) if spec.takes_ctx else (model,)
    if inspect.iscoroutinefunction(spec.fn):
        return await spec.fn(*call_args)
    # A sync tool runs where what it waits on says (`WaitsOn`). A thread hop is no small cost: while another
    # thread (the retrieval indexer) wants the GIL, each handover waits for it (the suppression lookup took
    # 9 ms a call on a thread for 3 ms of work in it).
    if spec.waits_on == "nothing" or (
        spec.waits_on == "store" and ctx.settings.sqlalchemy_url.startswith("sqlite")
    ):
        return spec.fn(*call_args)
    return await asyncio.to_thread(spec.fn, *call_args)


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """Every built-in tool (threat intel, context, ATT&CK, LOLBins, lineage, response actions)."""
    global _DEFAULT
    if _DEFAULT is None:
        from soctriage.tools import (
            actions,
            attack,
            intel,
            inventory,
            known_good,
            lineage,
            lolbins,
            org_context,
            retrieval_tools,
            suppression,
        )

        _DEFAULT = Registry(
            [
                *intel.TOOLS,
                *inventory.TOOLS,
                *attack.TOOLS,
                *lolbins.TOOLS,
                *lineage.TOOLS,
                *retrieval_tools.TOOLS,
                *known_good.TOOLS,
                *org_context.TOOLS,
                *suppression.TOOLS,
                *actions.TOOLS,
            ]
        )
    return _DEFAULT


async def run_tool(
    ctx: ToolContext,
    name: str,
    args: Mapping[str, Any],
    *,
    decision: GuardDecision | None = None,
    approval: Approval | None = None,
    executed_keys: ExecutedKeys | None = None,
    registry: Registry | None = None,
    now: datetime | None = None,
) -> ToolOutcome:
    """Run a tool of `registry` (default: the built-in one). See `Registry.run`."""
    reg = registry or default_registry()
    return await reg.run(
        ctx, name, args, decision=decision, approval=approval, executed_keys=executed_keys, now=now
    )
