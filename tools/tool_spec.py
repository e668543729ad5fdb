"""Defining a tool: the `@tool` decorator and the `ToolSpec` it records, what a tool can see (`ToolContext`)
and what it may raise.

A tool is a plain typed function `fn(args: InputModel) -> OutputModel` or `fn(ctx: ToolContext, args:
InputModel) -> OutputModel`, sync or async, whose output model is a `ToolOutput`: it says in one line what the
tool found. The decorator records its risk tier, timeout, idempotency, rollback and which input fields name the
entities it acts on; the JSON schema the model sees is derived from the input model. tools/registry.py holds
the registered tools and runs them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import re
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from pydantic import BaseModel
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, Frozen, canonical_json
from soctriage.tools.scope import Scope, ToolFacts

if TYPE_CHECKING:
    from soctriage.tools.connectors import Connectors
    from soctriage.tools.suppression import RuleBook

RiskTier = Literal["read", "contain", "destructive"]
RISK_TIERS: tuple[RiskTier, ...] = ("read", "contain", "destructive")

# What a sync tool function waits on, which decides where the runner calls it (tools/registry.py): "nothing"
# (in-memory work, called in place: a hop to a thread and back costs more), "store" (the case store: in place
# on SQLite, a local file, and on a worker thread on PostgreSQL, as `Store.io` does) or "io" (disk, network,
# a model: on a worker thread, where the timeout can still fire). An `async def` tool runs on the loop and
# awaits its own waits.
WaitsOn = Literal["nothing", "store", "io"]

# Which kind of entity an input field names; the guard looks hosts up in the inventory and users in the
# identity list, and checks every target against the case's entities.
TargetKind = Literal["host", "user", "process", "file", "indicator"]


class ToolError(Exception):
    """A tool could not do its job (bad data, missing configuration); the runner reports it as an outcome."""


class ConnectorError(ToolError):
    """A remote or simulated connector failed after its own retries."""


class RegistryError(Exception):
    """A tool definition is wrong (programming error, raised at import/registration time)."""


class ToolOutput(Frozen):
    """What a tool returns. The ledger and the graph state keep it as JSON; readers get it back as its model
    (`Registry.output`)."""

    @abstractmethod
    def summary(self) -> str:
        """What the tool found, in one line: the ledger digest the case assistant reads and the result a
        model is shown for the call."""

    def entities(self) -> tuple[str, ...]:
        """Entities the tool found about its subjects: they widen what actions may target (tools/scope.py)."""
        return ()

    def confirmed(self) -> tuple[str, ...]:
        """Entities the tool confirmed as threats."""
        return ()


def args_hash(args: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a call's arguments: what approvals and idempotency keys bind to."""
    return hashlib.sha256(canonical_json(dict(args)).encode()).hexdigest()


def idempotency_key(case_id: str, tool: str, digest: str) -> str:
    """`case_id|tool|args_hash`: the same action on the same case with the same arguments acts once."""
    return f"{case_id}|{tool}|{digest}"


@dataclasses.dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    tier: RiskTier
    timeout_s: float
    idempotent: bool
    rollback: str | None
    targets: Mapping[str, TargetKind]
    input_model: type[BaseModel]
    output_model: type[ToolOutput]
    fn: Callable[..., Any]
    takes_ctx: bool
    contains: bool = False
    human_only: bool = False
    waits_on: WaitsOn = "io"

    @property
    def side_effecting(self) -> bool:
        return self.tier != "read"

    def parameters_schema(self) -> dict[str, Any]:
        return _json_schema(self.input_model)

    def schema(self) -> dict[str, Any]:
        """Name, description and parameters: the neutral tool schema for LLM tool calling."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters_schema()}

    def openai_tool(self) -> dict[str, Any]:
        return {"type": "function", "function": self.schema()}

    def normalize(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Validated arguments as plain JSON (defaults filled in); raises `ValidationError`."""
        return self.input_model.model_validate(dict(args)).model_dump(mode="json")

    def target_values(self, args: Mapping[str, Any]) -> list[tuple[str, TargetKind, str]]:
        """(field, kind, value) for every target field the call sets: what an action acts on, or what a
        lookup is about (its results widen the case's scope only when those are in scope already)."""
        return [
            (field, kind, str(args[field]))
            for field, kind in self.targets.items()
            if args.get(field) is not None
        ]


@functools.cache
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    # Generating a schema costs milliseconds and the graph offers the tools on every model turn.
    return model.model_json_schema()


def tool(
    *,
    name: str | None = None,
    tier: RiskTier,
    timeout_s: float = 30.0,
    idempotent: bool = True,
    rollback: str | None = None,
    targets: Mapping[str, TargetKind] | None = None,
    description: str | None = None,
    contains: bool = False,
    human_only: bool = False,
    waits_on: WaitsOn = "io",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a function as a tool. The function keeps working as a plain function; its spec rides along.

    `targets` names the input fields that hold entities. `contains`: running it contains a threat (the case
    then ends `contained`). `human_only`: it undoes containment, so it is never offered to an agent and the
    guard refuses it from one. `waits_on`: what a sync function waits on (`WaitsOn`)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        spec = _build_spec(fn, name, tier, timeout_s, idempotent, rollback, targets, description)
        fn.__tool_spec__ = dataclasses.replace(  # type: ignore[attr-defined]
            spec, contains=contains, human_only=human_only, waits_on=waits_on
        )
        return fn

    return decorate


def _build_spec(
    fn: Callable[..., Any],
    name: str | None,
    tier: RiskTier,
    timeout_s: float,
    idempotent: bool,
    rollback: str | None,
    targets: Mapping[str, TargetKind] | None,
    description: str | None,
) -> ToolSpec:
    where = f"{fn.__module__}.{fn.__qualname__}"
    if tier not in RISK_TIERS:
        raise RegistryError(f"{where}: tier must be one of {RISK_TIERS}, got {tier!r}")
    if timeout_s <= 0:
        raise RegistryError(f"{where}: timeout_s must be positive")
    hints = get_type_hints(fn)
    params = list(inspect.signature(fn).parameters)
    if len(params) not in (1, 2):
        raise RegistryError(f"{where}: a tool takes (args) or (ctx, args), got {params}")
    input_model = hints.get(params[-1])
    output_model = hints.get("return")
    if not (isinstance(input_model, type) and issubclass(input_model, BaseModel)):
        raise RegistryError(f"{where}: the argument must be annotated with a pydantic model")
    if not (isinstance(output_model, type) and issubclass(output_model, ToolOutput)):
        raise RegistryError(f"{where}: the return must be annotated with a ToolOutput model")
    if inspect.isabstract(output_model):
        raise RegistryError(f"{where}: {output_model.__name__} must say what the tool found (summary())")
    targets = dict(targets or {})
    unknown = set(targets) - set(input_model.model_fields)
    if unknown:
        raise RegistryError(f"{where}: targets name fields the input model lacks: {sorted(unknown)}")
    # Docstrings wrap at the line limit; the model reads paragraphs, not our line breaks.
    doc = description or re.sub(r"(?<!\n)\n(?!\n)", " ", inspect.cleandoc(fn.__doc__ or ""))
    if not doc:
        raise RegistryError(f"{where}: a tool needs a docstring (it is the description the model reads)")
    return ToolSpec(
        name=name or fn.__name__,
        description=doc,
        tier=tier,
        timeout_s=timeout_s,
        idempotent=idempotent,
        rollback=rollback,
        targets=targets,
        input_model=input_model,
        output_model=output_model,
        fn=fn,
        takes_ctx=len(params) == 2,
    )


def spec_of(fn_or_spec: Callable[..., Any] | ToolSpec) -> ToolSpec:
    if isinstance(fn_or_spec, ToolSpec):
        return fn_or_spec
    spec = getattr(fn_or_spec, "__tool_spec__", None)
    if spec is None:
        raise RegistryError(f"{fn_or_spec!r} is not decorated with @tool")
    return spec


@dataclasses.dataclass(frozen=True)
class ToolContext:
    """What a tool can see. Built by the graph once per case; the runner adds the call's idempotency key."""

    case_id: str
    tenant: str
    alert: Alert
    settings: Settings
    connectors: Connectors
    scope: Scope
    dry_run: bool = False
    idempotency_key: str | None = None
    # Set when no action of this case may run without a human (the model fell back to builtin): the reason.
    approval_required: str | None = None
    # The tenant's analyst-taught suppression rules (None where no case store is open).
    rules: RuleBook | None = None

    @classmethod
    def for_alert(
        cls,
        case_id: str,
        tenant: str,
        alert: Alert,
        settings: Settings,
        connectors: Connectors,
        *,
        dry_run: bool = False,
        results: Iterable[ToolFacts] = (),
        approval_required: str | None = None,
        rules: RuleBook | None = None,
    ) -> ToolContext:
        """The case as tools see it; `results` (tool results so far, in ledger order) widen what actions may
        target, by provenance (`soctriage.tools.scope`)."""
        scope = Scope.of_alert(alert).after(results)
        return cls(
            case_id,
            tenant,
            alert,
            settings,
            connectors,
            scope,
            dry_run,
            approval_required=approval_required,
            rules=rules,
        )
