"""Alert grouping in the store: the keys each case was seen with, and the lookup that finds the case an alert
joins. Which keys an alert has is policy (`soctriage.tools.grouping`); the store only matches them, inside the
write transaction that opens or joins the case, so two writers never open two cases for one incident."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from soctriage.service.domain import Alert, canonical_json
from soctriage.service.store.schema import alert_groups
from sqlalchemy import Connection, bindparam, case, select, text, update


class GroupKey(NamedTuple):
    """One way an alert can match a case: the grouping rule and the values it compares."""

    rule: str
    values: tuple[tuple[str, str], ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(canonical_json([self.rule, list(self.values)]).encode()).hexdigest()

    def shown(self) -> dict[str, str]:
        """As the ledger records it: why the alert joined."""
        return {"rule": self.rule, **dict(self.values)}


@dataclass(frozen=True)
class Grouping:
    """What the store needs to group: each alert's keys, and how far apart in alert time two alerts of one
    incident may be."""

    keys: Callable[[Alert], Sequence[GroupKey]]
    window: timedelta


@dataclass(frozen=True)
class Joined:
    """An alert that joined an existing case instead of opening one."""

    case_id: str
    alert_id: str
    tenant: str
    seq: int
    keys: tuple[GroupKey, ...]


def lock_tenant(conn: Connection, tenant: str) -> None:
    """Serialise a tenant's grouping decisions. SQLite's write lock already does; on PostgreSQL two intake
    transactions would each see no case and both open one, so they take a per-tenant advisory lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"soctriage-group:{tenant}"}
        )


def find_case(
    conn: Connection, tenant: str, keys: Sequence[GroupKey], at: datetime, window: timedelta
) -> tuple[str, tuple[GroupKey, ...]] | None:
    """The case whose keys last matched nearest `at` within the window, and which of `keys` matched it."""
    if not keys:
        return None
    by_digest = {key.digest: key for key in keys}
    rows = conn.execute(
        _MATCH,
        {"tenant": tenant, "digests": list(by_digest), "lo": at - window, "hi": at + window},
    ).all()
    if not rows:
        return None
    case_id = rows[0].case_id
    return case_id, tuple(by_digest[row.key_hash] for row in rows if row.case_id == case_id)


def remember(conn: Connection, tenant: str, case_id: str, keys: Iterable[GroupKey], at: datetime) -> None:
    """Record that `case_id` was seen with `keys` at alert time `at`: widen a known key's span, add new ones."""
    digests = {key.digest for key in keys}
    if not digests:
        return
    known = set(
        conn.execute(
            select(alert_groups.c.key_hash).where(
                alert_groups.c.tenant == tenant,
                alert_groups.c.case_id == case_id,
                alert_groups.c.key_hash.in_(digests),
            )
        ).scalars()
    )
    if known:
        conn.execute(_WIDEN, [{"t": tenant, "c": case_id, "k": k, "at": at} for k in known])
    fresh = digests - known
    if fresh:
        rows = [_row(tenant, case_id, k, at) for k in sorted(fresh)]
        conn.execute(alert_groups.insert(), rows)


def new_rows(tenant: str, case_id: str, keys: Iterable[GroupKey], at: datetime) -> list[dict[str, Any]]:
    """Key rows of a case opened in a batch (inserted with the batch)."""
    return [_row(tenant, case_id, digest, at) for digest in sorted({key.digest for key in keys})]


def _row(tenant: str, case_id: str, digest: str, at: datetime) -> dict[str, Any]:
    return {"tenant": tenant, "key_hash": digest, "case_id": case_id, "first_at": at, "last_at": at}


_MATCH = (
    select(alert_groups.c.case_id, alert_groups.c.key_hash)
    .where(
        alert_groups.c.tenant == bindparam("tenant"),
        alert_groups.c.key_hash.in_(bindparam("digests", expanding=True)),
        alert_groups.c.first_at <= bindparam("hi"),
        alert_groups.c.last_at >= bindparam("lo"),
    )
    .order_by(alert_groups.c.last_at.desc(), alert_groups.c.case_id)
)
_AT = bindparam("at", type_=alert_groups.c.first_at.type)
_WIDEN = (
    update(alert_groups)
    .where(
        alert_groups.c.tenant == bindparam("t"),
        alert_groups.c.case_id == bindparam("c"),
        alert_groups.c.key_hash == bindparam("k"),
    )
    .values(
        first_at=case((alert_groups.c.first_at > _AT, _AT), else_=alert_groups.c.first_at),
        last_at=case((alert_groups.c.last_at < _AT, _AT), else_=alert_groups.c.last_at),
    )
)
