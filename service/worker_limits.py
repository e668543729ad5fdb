"""The global model-call rate limit: a token bucket kept in the store, so every worker process on the same
database (any number of machines) draws from one budget.

Each request reserves the next free slot in one short transaction and then sleeps until that slot, so waiting
callers never poll the database.
"""

from __future__ import annotations

import asyncio

import httpx2
from soctriage.service.domain import utc_now
from soctriage.service.store import Store
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.schema import rate_limits
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

MODEL_CALLS = "model_calls"


class SharedRateLimit:
    """`rate` calls per second across every process sharing `store`; bursts of up to one second's worth."""

    def __init__(self, store: Store, rate: float, name: str = MODEL_CALLS) -> None:
        self.store = store
        self.rate = rate
        self.burst = max(1.0, rate)
        self.name = name

    def reserve(self) -> float:
        """Take one token, possibly borrowing from the future; returns how long to wait before using it."""
        now = utc_now()
        try:
            with write_transaction(self.store.engine) as conn:
                row = conn.execute(
                    select(rate_limits.c.tokens, rate_limits.c.updated_at)
                    .where(rate_limits.c.name == self.name)
                    .with_for_update()
                ).first()
                if row is None:
                    conn.execute(
                        rate_limits.insert().values(name=self.name, tokens=self.burst - 1, updated_at=now)
                    )
                    return 0.0
                elapsed = max(0.0, (now - row.updated_at).total_seconds())
                tokens = min(self.burst, row.tokens + elapsed * self.rate) - 1
                conn.execute(
                    update(rate_limits)
                    .where(rate_limits.c.name == self.name)
                    .values(tokens=tokens, updated_at=max(now, row.updated_at))
                )
        except IntegrityError:
            # Another process created the bucket row first; take the token from it.
            return self.reserve()
        return 0.0 if tokens >= 0 else -tokens / self.rate

    async def acquire(self) -> None:
        wait = await asyncio.to_thread(self.reserve)
        if wait > 0:
            await asyncio.sleep(wait)

    async def before_request(self, _request: httpx2.Request) -> None:
        """An httpx2 request hook: every HTTP request to the model endpoint, retries included, takes a token."""
        await self.acquire()
