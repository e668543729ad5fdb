"""Analyst-taught suppression rules: a benign pattern an analyst confirmed, matched on structured fields only.

An analyst's feedback that a case is benign teaches the key of its alert: the detection, the process's
path and hash, its parent's path, the account, the command line's shape, the file's path and hash (and the
host, when the analyst binds the rule to it). Each field is matched exactly, so a copy of the tool at another
path, another build of it, another parent or another command fails the match. A rule becomes active when
the analyst asks for one, or when feedback on `rule_after_feedbacks` cases of one key agrees (a candidate
collects them until then); it expires, can be revoked, counts its hits, and is revoked by itself when an
analyst calls a case of its key a true positive.

A matching rule is a benign fact for the builtin (agents/builtin_benign.py), which cites the rule and the cases
it came from, and which threat intel, malicious lineage and injection findings outrank.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field
from soctriage.service.domain import Alert, Disposition, Frozen, canonical_json, utc_now
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.schema import suppression_rules
from soctriage.tools.matching import canonical_path
from soctriage.tools.tool_spec import ToolContext, ToolOutput, tool
from sqlalchemy import Engine, RowMapping, select, text, update

RuleStatus = Literal["candidate", "active", "revoked"]
BENIGN: frozenset[str] = frozenset({"false_positive", "benign_true_positive"})


class RuleError(ValueError):
    """A rule cannot be made or changed; the message says why."""


class RuleKey(Frozen):
    """The structured fields an alert must carry, each exactly, for a rule to match it. None means the alert
    must not carry that field either: a rule taught on a process alert never matches a file alert."""

    detection: str = Field(description="the vendor's rule id, else its rule name, else the alert title")
    process_path: str | None = None
    process_sha256: str | None = None
    parent_path: str | None = None
    user: str | None = None
    cmdline_shape: str | None = Field(
        default=None, description="the command line in lower case with numbers, GUIDs and long hex elided"
    )
    file_path: str | None = None
    file_sha256: str | None = None
    host: str | None = Field(default=None, description="set only when the rule is bound to one host")

    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()


_GUID = re.compile(r"\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?")
_LONG_HEX = re.compile(r"\b[0-9a-f]{16,}\b")
_NUMBER = re.compile(r"\d+")
# A bare `\\host` argument (PsExec's target); a UNC path's server (`\\server\share\...`) says where a payload
# comes from, so it stays.
_UNC_HOST = re.compile(r"\\\\[^\\\s\"']+(?=[\s\"']|$)")


def cmdline_shape(cmdline: str | None, host: str | None = None) -> str | None:
    """The command line with what changes from run to run elided: numbers, GUIDs, long hex, the host it ran
    on and a bare `\\host` target. The same push to another workstation, or the same job on another day,
    keeps its shape; another command does not."""
    if not cmdline or not cmdline.strip():
        return None
    shape = " ".join(cmdline.lower().split())
    names = sorted({host.lower(), host.lower().split(".")[0]}, key=len, reverse=True) if host else []
    for name in names:
        if len(name) >= 3:
            shape = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", "<host>", shape)
    shape = _UNC_HOST.sub(r"\\\\<host>", shape)
    shape = _GUID.sub("<guid>", shape)
    shape = _LONG_HEX.sub("<hex>", shape)
    return _NUMBER.sub("<n>", shape)


def _path(value: str | None) -> str | None:
    place = canonical_path(value)
    return place[0].lower() if place else None


def _hash(value: str | None) -> str | None:
    return value.lower() if value else None


def rule_key(alert: Alert, *, host: bool = False) -> RuleKey | None:
    """The key an analyst's feedback on `alert` teaches, or None when the alert names no program or file:
    a rule on a detection alone would silence every alert of it."""
    process, file = alert.process, alert.file
    parent = process.parent if process else None
    account = alert.account
    key = RuleKey(
        detection=alert.detection,
        process_path=_path(process.path) if process else None,
        process_sha256=_hash(process.sha256) if process else None,
        parent_path=_path(parent.path) if parent else None,
        user=account,
        cmdline_shape=cmdline_shape(process.cmdline, alert.device.hostname if alert.device else None)
        if process
        else None,
        file_path=_path(file.path) if file else None,
        file_sha256=_hash(file.sha256) if file else None,
        host=(alert.device.hostname or "").lower() or None if host and alert.device else None,
    )
    if not (key.process_path or key.process_sha256 or key.file_path or key.file_sha256):
        return None
    return key


class SuppressionRule(Frozen):
    id: str
    tenant: str
    match: RuleKey
    disposition: Disposition
    status: RuleStatus
    author: str
    reason: str | None = None
    source_cases: tuple[str, ...]
    created_at: datetime
    activated_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None
    hits: int = 0
    last_hit_at: datetime | None = None

    def in_force(self, now: datetime) -> bool:
        return self.status == "active" and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class Learned:
    """What one feedback did to the rules: the rule it touched and how (None: the case taught nothing)."""

    rule: SuppressionRule | None
    change: Literal["candidate", "activated", "extended", "revoked"] | None
    why: str


def _rule(row: RowMapping) -> SuppressionRule:
    fields = {k: v for k, v in row.items() if k != "key_hash"}
    return SuppressionRule.model_validate({**fields, "match": RuleKey.model_validate(row["match"])})


class RuleBook:
    """The suppression rules in the case store (table `suppression_rules`), per tenant."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def learn(
        self,
        tenant: str,
        case_id: str,
        alert: Alert,
        disposition: str,
        *,
        author: str,
        reason: str | None,
        explicit: bool,
        bind_host: bool = False,
        after: int,
        ttl: timedelta | None,
        now: datetime | None = None,
    ) -> Learned:
        """Fold one feedback into the rules. Benign feedback adds the case to its key's candidate (made
        active at `after` cases (0: never by count), or at once when `explicit`); any other disposition revokes a rule of that
        key, since an analyst has just seen an attack wear it."""
        now = now or utc_now()
        key = rule_key(alert, host=bind_host)
        if key is None:
            why = (
                "the alert names no process or file, so no rule can tell it apart from the detection's others"
            )
            if explicit:
                raise RuleError(f"case {case_id}: {why}")
            return Learned(None, None, why)
        digest = key.digest()
        with write_transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                    {"name": f"soctriage-rule:{tenant}:{digest}"},
                )
            query = select(suppression_rules).where(
                suppression_rules.c.tenant == tenant,
                suppression_rules.c.key_hash == digest,
                suppression_rules.c.status != "revoked",
            )
            row = conn.execute(query).mappings().first()
            if disposition not in BENIGN:
                if row is None:
                    return Learned(None, None, f"no rule has the key of case {case_id}")
                why = f"case {case_id} was called {disposition} by {author}"
                conn.execute(_revoke(row["id"], author, why, now))
                return Learned(self._get(conn, row["id"]), "revoked", why)
            if row is None:
                active = explicit or after == 1
                rule_id = f"rule-{uuid.uuid4().hex[:10]}"
                conn.execute(
                    suppression_rules.insert().values(
                        id=rule_id,
                        tenant=tenant,
                        key_hash=digest,
                        match=key.model_dump(mode="json"),
                        disposition=disposition,
                        status="active" if active else "candidate",
                        author=author,
                        reason=reason,
                        source_cases=[case_id],
                        created_at=now,
                        activated_at=now if active else None,
                        expires_at=now + ttl if active and ttl else None,
                        hits=0,
                    )
                )
                change = "activated" if active else "candidate"
                return Learned(self._get(conn, rule_id), change, f"taught by case {case_id}")
            sources = list(row["source_cases"])
            if case_id not in sources:
                sources.append(case_id)
            values: dict[str, Any] = {"source_cases": sources, "disposition": disposition}
            agreed = after > 0 and len(sources) >= after
            becomes_active = row["status"] == "candidate" and (explicit or agreed)
            if becomes_active:
                values |= {
                    "status": "active",
                    "activated_at": now,
                    "expires_at": now + ttl if ttl else None,
                    # The analyst whose feedback completed the rule stands behind it.
                    "author": author,
                    "reason": reason or row["reason"],
                }
            conn.execute(update(suppression_rules).where(suppression_rules.c.id == row["id"]).values(values))
            change = (
                "activated" if becomes_active else "extended" if row["status"] == "active" else "candidate"
            )
            return Learned(self._get(conn, row["id"]), change, f"cases {', '.join(sources)} agree")

    def in_force(self, tenant: str, alert: Alert, now: datetime | None = None) -> list[SuppressionRule]:
        """The tenant's active, unexpired rules that match `alert`; each match counts a hit. A rule matches
        when its key is the alert's key, so the lookup is by the key's digest, never a scan of the rules."""
        now = now or utc_now()
        digests = {key.digest() for key in (rule_key(alert), rule_key(alert, host=True)) if key is not None}
        if not digests:
            return []
        query = select(suppression_rules).where(
            suppression_rules.c.tenant == tenant,
            suppression_rules.c.key_hash.in_(sorted(digests)),
            suppression_rules.c.status == "active",
        )
        with self.engine.connect() as conn:
            hits = [rule for row in conn.execute(query).mappings() if (rule := _rule(row)).in_force(now)]
        if hits:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    update(suppression_rules)
                    .where(suppression_rules.c.id.in_([rule.id for rule in hits]))
                    .values(hits=suppression_rules.c.hits + 1, last_hit_at=now)
                )
        return hits

    def list(self, tenant: str | None = None, *, revoked: bool = False) -> list[SuppressionRule]:
        query = select(suppression_rules).order_by(suppression_rules.c.created_at.desc())
        if tenant is not None:
            query = query.where(suppression_rules.c.tenant == tenant)
        if not revoked:
            query = query.where(suppression_rules.c.status != "revoked")
        with self.engine.connect() as conn:
            return [_rule(row) for row in conn.execute(query).mappings()]

    def get(self, rule_id: str) -> SuppressionRule | None:
        with self.engine.connect() as conn:
            return self._get(conn, rule_id)

    def revoke(self, rule_id: str, by: str, reason: str, now: datetime | None = None) -> SuppressionRule:
        with write_transaction(self.engine) as conn:
            rule = self._get(conn, rule_id)
            if rule is None:
                raise RuleError(f"rule {rule_id} does not exist")
            if rule.status == "revoked":
                raise RuleError(
                    f"rule {rule_id} was already revoked by {rule.revoked_by} at {rule.revoked_at}"
                )
            conn.execute(_revoke(rule_id, by, reason, now or utc_now()))
            revoked = self._get(conn, rule_id)
        assert revoked is not None
        return revoked

    @staticmethod
    def _get(conn: Any, rule_id: str) -> SuppressionRule | None:
        row = (
            conn.execute(select(suppression_rules).where(suppression_rules.c.id == rule_id))
            .mappings()
            .first()
        )
        return None if row is None else _rule(row)


def _revoke(rule_id: str, by: str, reason: str, now: datetime) -> Any:
    return (
        update(suppression_rules)
        .where(suppression_rules.c.id == rule_id)
        .values(status="revoked", revoked_at=now, revoked_by=by, revoke_reason=reason)
    )


# --- the read tool --------------------------------------------------------------------------------------


class SuppressionRulesInput(Frozen):
    """No arguments: the lookup reads the case's alert."""


class RuleHit(Frozen):
    rule_id: str
    disposition: Disposition
    author: str
    reason: str | None
    source_cases: tuple[str, ...]
    activated_at: datetime | None
    expires_at: datetime | None
    hits: int = Field(description="alerts the rule has matched, this one included")


class SuppressionRulesReport(ToolOutput):
    rules_in_force: bool = Field(description="whether the rule book was consulted (false: none is kept here)")
    matches: tuple[RuleHit, ...] = ()

    def summary(self) -> str:
        if not self.rules_in_force:
            return "no rule book is kept here"
        hits = [f"rule {h.rule_id} ({h.disposition}, by {h.author})" for h in self.matches]
        return "matches " + ", ".join(hits) if hits else "no analyst rule matches"


@tool(tier="read", timeout_s=5.0, waits_on="store")
def suppression_rules_lookup(ctx: ToolContext, args: SuppressionRulesInput) -> SuppressionRulesReport:
    """Suppression rules the tenant's analysts taught that match the case's alert exactly (detection, process
    path and hash, parent, account, command-line shape, file; host when bound): each with its author, reason
    and the cases it was taught on. A match is analyst-confirmed benign precedent, not proof: intel,
    malicious lineage and injection findings outrank it."""
    if ctx.rules is None:
        return SuppressionRulesReport(rules_in_force=False)
    hits = ctx.rules.in_force(ctx.tenant, ctx.alert)
    return SuppressionRulesReport(
        rules_in_force=True,
        matches=tuple(
            RuleHit(
                rule_id=r.id,
                disposition=r.disposition,
                author=r.author,
                reason=r.reason,
                source_cases=r.source_cases,
                activated_at=r.activated_at,
                expires_at=r.expires_at,
                hits=r.hits + 1,
            )
            for r in hits
        ),
    )


TOOLS = [suppression_rules_lookup]
