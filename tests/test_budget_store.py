"""The store's action budget over several limits at once: a key counts once per window, a spent limit counts the
action against none, and rows that left their window are deleted, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from soctriage.service.config import Settings
from soctriage.service.store import Store
from soctriage.service.store.schema import action_budget
from soctriage.tools.budget import StoreActionBudget
from soctriage.tools.policy import RateLimit
from sqlalchemy import func, select

START = datetime(2026, 5, 6, 7, 0, tzinfo=UTC)
BURST = RateLimit(id="burst", max_actions=2, window_s=60)
HOURLY = RateLimit(id="hourly", max_actions=3, window_s=3600)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_limits_count_keys_once_refuse_whole_and_forget_what_left_the_window(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = (
        Settings(database_url=request.getfixturevalue("pg_url"))
        if backend == "postgres"
        else Settings(home=tmp_path / "home")
    )
    limits = (BURST, HOURLY)
    with Store.open(settings) as store:
        budget = StoreActionBudget(store.engine)

        def rows(limit_id: str, tenant: str = "t1") -> int:
            with store.engine.connect() as conn:
                query = select(func.count()).where(
                    action_budget.c.tenant == tenant, action_budget.c.limit_id == limit_id
                )
                return conn.execute(query).scalar_one()

        assert budget.take("t1", limits, "k1", START) is None
        assert budget.take("t1", limits, "k1", START + timedelta(seconds=1)) is None  # counted once
        assert budget.take("t1", limits, "k2", START + timedelta(seconds=2)) is None
        assert (rows("burst"), rows("hourly")) == (2, 2)
        assert budget.take("t1", limits, "k3", START + timedelta(seconds=3)) == BURST
        assert (rows("burst"), rows("hourly")) == (2, 2)  # refused: counted against neither
        assert budget.take("t2", limits, "k3", START + timedelta(seconds=3)) is None  # another tenant
        later = START + timedelta(seconds=63)
        assert budget.take("t1", limits, "k3", later) is None  # the burst window moved on
        assert (rows("burst"), rows("hourly")) == (1, 3)  # the two old burst rows were deleted
        assert budget.take("t1", limits, "k4", later) == HOURLY
        assert budget.take("t1", limits, "k1", later) is None  # k1 is still in the hourly window
        assert (rows("burst"), rows("hourly")) == (2, 3)
        assert (rows("burst", "t2"), rows("hourly", "t2")) == (1, 1)
