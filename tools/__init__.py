"""Guarded tools (DESIGN §5): typed tool functions with risk tiers, the policy guard, and the connectors.

The graph builds one `Connectors` and one `Guard` per process, a `ToolContext` per case, then for each call:
`guard.decide(ctx, call)` -> `run_tool(ctx, name, args, decision=..., approval=..., executed_keys=...)`, and
writes the returned records as `tool_call`, `guard_decision`, `tool_result` and `action_executed` entries.
"""

from soctriage.tools.actions import ActionReceipt
from soctriage.tools.connectors import Connectors
from soctriage.tools.guard import Approval, ApprovalCheck, Guard, GuardDecision, check_approval
from soctriage.tools.policy import Decision, Policy, PolicyError, load_policy
from soctriage.tools.registry import Registry, ToolCall, ToolOutcome, default_registry, run_tool
from soctriage.tools.response_connectors import (
    CrowdStrikeConnector,
    DefenderConnector,
    ResponseConnector,
    SimulatorConnector,
)
from soctriage.tools.scope import Origin, Scope, ToolFacts
from soctriage.tools.tool_spec import (
    ConnectorError,
    RiskTier,
    ToolContext,
    ToolError,
    ToolSpec,
    args_hash,
    idempotency_key,
    tool,
)

__all__ = [
    "ActionReceipt",
    "Approval",
    "ApprovalCheck",
    "ConnectorError",
    "Connectors",
    "CrowdStrikeConnector",
    "Decision",
    "DefenderConnector",
    "Guard",
    "GuardDecision",
    "Origin",
    "Policy",
    "PolicyError",
    "Registry",
    "ResponseConnector",
    "RiskTier",
    "Scope",
    "SimulatorConnector",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolFacts",
    "ToolOutcome",
    "ToolSpec",
    "args_hash",
    "check_approval",
    "default_registry",
    "idempotency_key",
    "load_policy",
    "run_tool",
    "tool",
]
