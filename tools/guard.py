"""The guard: a declarative YAML policy decides allow / needs_approval / deny for every tool call.

Order of evaluation (first hit wins):
1. unknown tool, invalid arguments, tool deny list or allow list -> deny
2. read tier -> allow (reads have no side effects)
3. a tool that undoes containment (release, unblock, enable) -> deny: only a human may ask for one
4. a target outside the case's provenance -> deny (built in: an action may target only an entity of the
   alert's structured fields or one a tool discovered about those, never a value a model made up or looked
   up; see `soctriage.tools.scope`)
5. a deny-listed target (`deny_targets`) -> deny
6. a target the alert names only in free text (and a tool confirmed as a threat) -> needs_approval
7. containment while the case's model is down (builtin fallback) -> needs_approval
8. `allow_targets` covering every target of the call -> allow
9. `rules`, in order (tools, tiers, asset criticality / role, privileged user, tenant) -> their decision
10. `tier_defaults` (read allow, contain allow, destructive needs_approval)

The per-tenant action budget (`rate_limits`) is charged when an allowed action runs (`Guard.charge`), never
for a proposal that waits for a human; when it is spent, the action waits for a human instead of running.
Dry-run (policy or context) does not change the decision; it marks it so the runner simulates the action.
The guard returns a `GuardDecision` (the `guard_decision` ledger payload); it writes nothing itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field, ValidationError
from soctriage.service.config import Settings
from soctriage.service.domain import Frozen, utc_now
from soctriage.tools.inventory import Criticality, HostRole
from soctriage.tools.policy import (
    Decision,
    Policy,
    PolicyError,
    RateLimit,
    When,
    load_policy,
)
from soctriage.tools.registry import Registry, ToolCall, default_registry, describe_validation
from soctriage.tools.tool_spec import RiskTier, TargetKind, ToolContext, args_hash, idempotency_key

if TYPE_CHECKING:
    from sqlalchemy import Connection


class TargetInfo(Frozen):
    field: str
    kind: TargetKind
    value: str
    in_case: bool
    from_alert_text: bool = Field(
        default=False, description="named only in the alert's free text, not in a structured EDR field"
    )
    provenance: str | None = Field(default=None, description="where the target came from; None: nowhere")
    criticality: Criticality | None = None
    role: HostRole | None = None
    privileged: bool | None = None


class GuardDecision(Frozen):
    """The `guard_decision` ledger payload. `args` are the validated arguments the hash covers."""

    case_id: str
    tenant: str
    tool: str
    tier: RiskTier | None
    args: dict[str, Any]
    args_hash: str
    idempotency_key: str
    decision: Decision
    reason: str
    rule_id: str
    dry_run: bool = False
    targets: tuple[TargetInfo, ...] = ()
    call_id: str | None = None
    decided_at: datetime


class Approval(Frozen):
    """A human decision on one exact call: bound to (case_id, tool, args_hash), valid until expires_at."""

    case_id: str
    tool: str
    args_hash: str
    approved: bool = True
    decided_by: str
    decided_at: datetime
    expires_at: datetime
    reason: str | None = None

    @classmethod
    def for_decision(
        cls,
        decision: GuardDecision,
        *,
        by: str,
        now: datetime,
        ttl_s: float,
        approved: bool = True,
        reason: str | None = None,
    ) -> Approval:
        return cls(
            case_id=decision.case_id,
            tool=decision.tool,
            args_hash=decision.args_hash,
            approved=approved,
            decided_by=by,
            decided_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
            reason=reason,
        )


ApprovalStatus = Literal["ok", "rejected", "expired", "other_case", "other_tool", "other_args"]


class ApprovalCheck(Frozen):
    ok: bool
    status: ApprovalStatus
    reason: str


def check_approval(
    approval: Approval, case_id: str, tool: str, args: Mapping[str, Any], now: datetime
) -> ApprovalCheck:
    """Is `approval` valid for this exact call now? `args` must be the guard decision's (validated) args."""

    def bad(status: ApprovalStatus, reason: str) -> ApprovalCheck:
        return ApprovalCheck(ok=False, status=status, reason=reason)

    if approval.case_id != case_id:
        return bad("other_case", f"approval is for case {approval.case_id}, not {case_id}")
    if approval.tool != tool:
        return bad("other_tool", f"approval is for {approval.tool}, not {tool}")
    if approval.args_hash != args_hash(args):
        return bad("other_args", "approval is bound to other arguments")
    if not approval.approved:
        return bad("rejected", f"rejected by {approval.decided_by}")
    if now >= approval.expires_at:
        return bad("expired", f"approval expired at {approval.expires_at.isoformat()}")
    return ApprovalCheck(ok=True, status="ok", reason=f"approved by {approval.decided_by}")


class ActionBudget(Protocol):
    """Where the policy's per-tenant action budgets (`rate_limits`) are counted."""

    def take(
        self,
        tenant: str,
        limits: Sequence[RateLimit],
        key: str,
        now: datetime,
        *,
        within: Connection | None = None,
    ) -> RateLimit | None:
        """The first of `limits` the action `key` would exceed, or None after counting it against every
        limit. Check and count are one step, so two processes cannot both take the last unit. An
        idempotency key already counted in a window counts once (a resumed run does not pay twice).
        `within`: a store write transaction to count in, for a budget kept in the store."""
        ...


class RateLimiter:
    """An in-memory budget: for one process (a CLI run, an eval). Workers sharing a database count in the
    store instead (`soctriage.tools.budget.StoreActionBudget`)."""

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], deque[tuple[datetime, str]]] = {}

    def take(
        self,
        tenant: str,
        limits: Sequence[RateLimit],
        key: str,
        now: datetime,
        *,
        within: Connection | None = None,
    ) -> RateLimit | None:
        windows = [(limit, self._window(tenant, limit, now)) for limit in limits]
        fresh = [(limit, hits) for limit, hits in windows if all(k != key for _, k in hits)]
        for limit, hits in fresh:
            if len(hits) >= limit.max_actions:
                return limit
        for _, hits in fresh:
            hits.append((now, key))
        return None

    def _window(self, tenant: str, limit: RateLimit, now: datetime) -> deque[tuple[datetime, str]]:
        hits = self._hits.setdefault((tenant, limit.id), deque())
        horizon = now - timedelta(seconds=limit.window_s)
        while hits and hits[0][0] <= horizon:
            hits.popleft()
        return hits


class Guard:
    def __init__(
        self,
        policy: Policy,
        *,
        registry: Registry | None = None,
        clock: Callable[[], datetime] = utc_now,
        budget: ActionBudget | None = None,
    ) -> None:
        self.policy = policy
        self.registry = registry or default_registry()
        self.clock = clock
        self.budget: ActionBudget = budget if budget is not None else RateLimiter()
        self._check_names()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Guard:
        return cls(load_policy(settings.policy_path), **kwargs)

    def _check_names(self) -> None:
        """A policy naming a tool that does not exist is a typo that would silently never match."""
        p = self.policy
        named = [("tools.deny", n) for n in p.tools.deny] + [("tools.allow", n) for n in p.tools.allow or ()]
        named += [(f"rules[{r.id}]", n) for r in p.rules for n in r.when.tools]
        named += [(f"rate_limits[{r.id}]", n) for r in p.rate_limits for n in r.exempt_tools]
        unknown = [f"{where}: {name}" for where, name in named if name not in self.registry]
        if unknown:
            raise PolicyError("policy names unknown tools: " + "; ".join(unknown))

    def decide(self, ctx: ToolContext, call: ToolCall) -> GuardDecision:
        now = self.clock()
        policy = self.policy
        raw = dict(call.args)

        def decided(
            decision: Decision, rule_id: str, reason: str, *, tier: RiskTier | None = None, **extra: Any
        ) -> GuardDecision:
            args = extra.pop("args", raw)
            digest = args_hash(args)
            return GuardDecision(
                case_id=ctx.case_id,
                tenant=ctx.tenant,
                tool=call.tool,
                tier=tier,
                args=args,
                args_hash=digest,
                idempotency_key=idempotency_key(ctx.case_id, call.tool, digest),
                decision=decision,
                reason=reason,
                rule_id=rule_id,
                call_id=call.call_id,
                decided_at=now,
                **extra,
            )

        if call.tool not in self.registry:
            return decided("deny", "unknown-tool", f"no tool named {call.tool!r}")
        spec = self.registry.get(call.tool)
        try:
            args = spec.normalize(raw)
        except ValidationError as exc:
            return decided("deny", "invalid-args", describe_validation(spec.name, exc), tier=spec.tier)
        if call.tool in policy.tools.deny:
            return decided(
                "deny", "tools.deny", f"{call.tool} is on the tool deny list", tier=spec.tier, args=args
            )
        if policy.tools.allow is not None and call.tool not in policy.tools.allow:
            return decided(
                "deny", "tools.allow", f"{call.tool} is not on the tool allow list", tier=spec.tier, args=args
            )
        if spec.tier == "read":
            return decided("allow", "tier:read", "read-only tool", tier="read", args=args)

        if spec.human_only:
            return decided(
                "deny",
                "undo-human-only",
                f"{call.tool} undoes containment: only a human may ask for it, never an agent",
                tier=spec.tier,
                args=args,
            )
        dry_run = policy.dry_run or ctx.dry_run
        targets = tuple(self._target_info(ctx, f, k, v) for f, k, v in spec.target_values(args))
        common: dict[str, Any] = {"tier": spec.tier, "args": args, "targets": targets, "dry_run": dry_run}
        for t in targets:
            if not t.in_case:
                return decided(
                    "deny",
                    "target-not-in-case",
                    f"{t.field}={t.value!r} is not in this case's scope: neither a structured field of the"
                    " alert nor something a tool discovered about one",
                    **common,
                )
        for t in targets:
            for pattern in policy.deny_targets:
                if pattern.matches(t.kind, t.value):
                    return decided(
                        "deny",
                        f"deny_targets:{pattern.match}",
                        f"{t.field}={t.value!r} is deny-listed: {pattern.reason}",
                        **common,
                    )
        from_text = [t for t in targets if t.from_alert_text]
        if from_text:
            # Built in: the alert's free text is written by whoever triggered it, so a target only that text
            # names is never acted on without a human, even once threat intel confirmed it.
            t = from_text[0]
            result = (
                "needs_approval",
                "target-from-alert-text",
                f"{t.field}={t.value!r} is named only in the alert's free text, not by a structured EDR field",
            )
        elif ctx.approval_required and spec.contains:
            result = ("needs_approval", "model-fallback", ctx.approval_required)
        else:
            result = self._decide_by_rules(ctx, spec.name, spec.tier, targets)
        return decided(*result, **common)

    def charge(
        self, ctx: ToolContext, decision: GuardDecision, *, within: Connection | None = None
    ) -> GuardDecision | None:
        """Charge an action the policy allowed to its tenant's budget as it is cleared to run. Returns None
        when it may run, or the decision that replaces `decision` when the budget is spent: the action then
        waits for a human (never silently denied). Human-approved, dry-run and exempt actions are not charged.
        `within`: the store transaction that records the decision, so the charge and the record are one."""
        if decision.decision != "allow" or decision.dry_run or decision.tier in (None, "read"):
            return None
        limits = [
            lim
            for lim in self.policy.rate_limits
            if decision.tier in lim.tiers and decision.tool not in lim.exempt_tools
        ]
        if not limits:
            return None
        exceeded = self.budget.take(ctx.tenant, limits, decision.idempotency_key, self.clock(), within=within)
        if exceeded is None:
            return None
        reason = (
            f"action budget spent: tenant {ctx.tenant!r} ran {exceeded.max_actions} actions in"
            f" {exceeded.window_s:g}s ({exceeded.id}); a human decides whether this one runs"
        )
        return decision.model_copy(
            update={
                "decision": "needs_approval",
                "rule_id": f"rate_limits:{exceeded.id}",
                "reason": reason,
                "decided_at": self.clock(),
            }
        )

    def _decide_by_rules(
        self, ctx: ToolContext, tool: str, tier: RiskTier, targets: tuple[TargetInfo, ...]
    ) -> tuple[Decision, str, str]:
        policy = self.policy
        if targets and all(
            any(tier in p.tiers and p.matches(t.kind, t.value) for p in policy.allow_targets) for t in targets
        ):
            return "allow", "allow_targets", "every target is on the allow list"
        for rule in policy.rules:
            if _rule_matches(rule.when, ctx.tenant, tool, tier, targets):
                return rule.decision, rule.id, rule.reason
        default: Decision = getattr(policy.tier_defaults, tier)
        return default, f"tier_defaults:{tier}", f"default for {tier} tools"

    def _target_info(self, ctx: ToolContext, field: str, kind: TargetKind, value: str) -> TargetInfo:
        info: dict[str, Any] = {"field": field, "kind": kind, "value": value}
        origin = ctx.scope.origin(value)
        info["in_case"] = origin is not None
        info["from_alert_text"] = origin is not None and origin.text_only
        info["provenance"] = origin.describe() if origin else None
        if kind == "host":
            host = ctx.connectors.inventory.host(value)
            info["criticality"] = host.criticality if host else "unknown"
            info["role"] = host.role if host else "unknown"
        elif kind == "user":
            user = ctx.connectors.inventory.user(value)
            info["privileged"] = user.privileged if user else None
        return TargetInfo(**info)


def _rule_matches(
    when: When, tenant: str, tool: str, tier: RiskTier, targets: tuple[TargetInfo, ...]
) -> bool:
    if when.tools and tool not in when.tools:
        return False
    if when.tiers and tier not in when.tiers:
        return False
    if when.tenants and tenant not in when.tenants:
        return False
    hosts = [t for t in targets if t.kind == "host"]
    if when.asset_criticality and not any(t.criticality in when.asset_criticality for t in hosts):
        return False
    if when.asset_roles and not any(t.role in when.asset_roles for t in hosts):
        return False
    if when.user_privileged is not None:
        users = [t for t in targets if t.kind == "user"]
        if not any(t.privileged is when.user_privileged for t in users):
            return False
    return True
