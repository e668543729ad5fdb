"""The guard's policy file (tools/data/policy.yaml by default; Settings `policy_path`): tier defaults, tool
allow and deny lists, target patterns, rules, the per-tenant action budget and alert grouping. Reading it
names the file, the line and the field of any error. What the guard does with it is tools/guard.py."""

from __future__ import annotations

import fnmatch
import ipaddress
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError
from soctriage.service.config import ConfigError
from soctriage.service.domain import Frozen
from soctriage.tools.datafiles import bundled, yaml_line, yaml_problem
from soctriage.tools.grouping import GroupingPolicy
from soctriage.tools.inventory import Criticality, HostRole
from soctriage.tools.tool_spec import RiskTier, TargetKind

Decision = Literal["allow", "needs_approval", "deny"]
DEFAULT_POLICY = bundled("policy.yaml")


class PolicyError(ConfigError):
    """The policy file is wrong; the message names the file, the line and the field."""


class TargetPattern(Frozen):
    match: str = Field(
        description="exact value, glob (*.corp.example) or CIDR (10.0.0.0/8); case-insensitive"
    )
    reason: str
    kinds: tuple[TargetKind, ...] = Field(default=(), description="target kinds it applies to; empty: all")
    tiers: tuple[RiskTier, ...] = Field(default=("contain",), description="allow_targets only: tiers covered")

    def matches(self, kind: TargetKind, value: str) -> bool:
        if self.kinds and kind not in self.kinds:
            return False
        pattern, candidate = self.match.lower(), value.lower()
        if "/" in pattern:
            try:
                return ipaddress.ip_address(candidate) in ipaddress.ip_network(pattern, strict=False)
            except ValueError:
                return False
        return fnmatch.fnmatchcase(candidate, pattern)


class When(Frozen):
    """All given conditions must hold; a list matches when any of its values does."""

    tools: tuple[str, ...] = ()
    tiers: tuple[RiskTier, ...] = ()
    asset_criticality: tuple[Criticality, ...] = ()
    asset_roles: tuple[HostRole, ...] = ()
    user_privileged: bool | None = None
    tenants: tuple[str, ...] = ()


class Rule(Frozen):
    id: str
    when: When
    decision: Decision
    reason: str


class RateLimit(Frozen):
    id: str
    max_actions: int = Field(ge=1)
    window_s: float = Field(gt=0)
    tiers: tuple[RiskTier, ...] = ("contain", "destructive")
    exempt_tools: tuple[str, ...] = ()


class ToolLists(Frozen):
    allow: tuple[str, ...] | None = Field(default=None, description="when set, only these tools may run")
    deny: tuple[str, ...] = ()


class TierDefaults(Frozen):
    read: Decision = "allow"
    contain: Decision = "allow"
    destructive: Decision = "needs_approval"


class Policy(Frozen):
    version: Literal[1] = 1
    dry_run: bool = False
    approval_ttl_s: float = Field(default=3600, gt=0, description="how long an approval stays valid")
    tier_defaults: TierDefaults = TierDefaults()
    tools: ToolLists = ToolLists()
    deny_targets: tuple[TargetPattern, ...] = ()
    allow_targets: tuple[TargetPattern, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()
    rules: tuple[Rule, ...] = ()
    grouping: GroupingPolicy = GroupingPolicy()


def load_policy(path: Path | None = None) -> Policy:
    """Read a policy YAML (None: the default shipped in tools/data/policy.yaml)."""
    path = path or DEFAULT_POLICY
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text) or {}
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(yaml_problem(path, exc)) from exc
    try:
        return Policy.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        line = yaml_line(yaml.compose(text), loc)
        where = f"{path}:{line}" if line else str(path)
        field = ".".join(str(p) for p in loc) or "(policy)"
        raise PolicyError(f"{where}: field {field!r}: {err['msg']}") from exc
