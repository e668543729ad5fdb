"""The guard's per-tenant action budgets counted in the store, so every worker sharing the database draws on
one budget per tenant (an in-memory count would give each process a budget of its own, and forget it on a
restart)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from soctriage.service.store.engine import write_transaction
from soctriage.service.store.schema import action_budget
from soctriage.tools.policy import RateLimit
from sqlalchemy import ColumnElement, Connection, Engine, bindparam, case, delete, func, select, text

# Built once: the statements of every take only differ in their parameters.
_MINE = (action_budget.c.tenant == bindparam("tenant")) & (action_budget.c.limit_id == bindparam("limit_id"))
_EXPIRED = action_budget.c.at <= bindparam("since")


def _total(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


# One limit's window in one read: the actions counted in it, whether this key is one of them, and how many rows
# fell out of it (deleted only when there are some).
_STATE = select(
    _total(~_EXPIRED),
    _total(~_EXPIRED & (action_budget.c.action_key == bindparam("key"))),
    _total(_EXPIRED),
).where(_MINE)
_EXPIRE = delete(action_budget).where(_MINE, _EXPIRED)
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:name))")


class StoreActionBudget:
    """`soctriage.tools.guard.ActionBudget` on the `action_budget` table. One write transaction checks and
    counts; a tenant's takes are serialised (SQLite: the write lock; PostgreSQL: an advisory lock per
    tenant), so two workers never both spend the last unit."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def take(
        self,
        tenant: str,
        limits: Sequence[RateLimit],
        key: str,
        now: datetime,
        *,
        within: Connection | None = None,
    ) -> RateLimit | None:
        """See `ActionBudget.take`. `within` is a write transaction already open on this database (the one
        that writes the action's guard decision to the ledger): the take commits or rolls back with it."""
        if within is not None:
            return self._take(within, tenant, limits, key, now)
        with write_transaction(self.engine) as conn:
            return self._take(conn, tenant, limits, key, now)

    @staticmethod
    def _take(
        conn: Connection, tenant: str, limits: Sequence[RateLimit], key: str, now: datetime
    ) -> RateLimit | None:
        if conn.dialect.name == "postgresql":
            conn.execute(_LOCK, {"name": f"soctriage-budget:{tenant}"})
        fresh: list[RateLimit] = []
        for limit in limits:
            mine = {"tenant": tenant, "limit_id": limit.id, "since": now - timedelta(seconds=limit.window_s)}
            used, counted, expired = conn.execute(_STATE, {**mine, "key": key}).one()
            if expired:
                # What fell out of the window is no longer needed by anyone.
                conn.execute(_EXPIRE, mine)
            if counted:
                continue
            if used >= limit.max_actions:
                return limit
            fresh.append(limit)
        if fresh:
            rows = [{"tenant": tenant, "limit_id": lim.id, "action_key": key, "at": now} for lim in fresh]
            conn.execute(action_budget.insert(), rows)
        return None
