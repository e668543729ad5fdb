"""The quarantine: records intake could not use, kept whole with the tenant whose intake rejected them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from soctriage.service.domain import utc_now
from soctriage.service.ingest.errors import Rejection
from soctriage.service.store.base import StoreBase
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.schema import quarantine
from sqlalchemy import Connection, Row, select


@dataclass(frozen=True)
class QuarantinedRecord:
    id: int
    received_at: datetime
    tenant: str | None  # None: kept before the quarantine named tenants
    rejection: Rejection


class Quarantine(StoreBase):
    """The store's quarantine (part of `Store`)."""

    def quarantine(self, rejections: Sequence[Rejection], tenant: str) -> list[int]:
        """Keep records `tenant`'s intake could not use, raw bytes whole, in one transaction; returns their
        quarantine ids in order. One transaction for the lot: a body of many bad records must cost one commit,
        not one each."""
        if not rejections:
            return []
        now = utc_now()
        rows = [{"received_at": now, "tenant": tenant, **rejection.model_dump()} for rejection in rejections]
        with write_transaction(self.engine) as conn:
            return list(conn.execute(_INSERT_QUARANTINE, rows).scalars())

    def list_quarantine(self, limit: int = 100, tenant: str | None = None) -> list[QuarantinedRecord]:
        """Newest first; one tenant's, or every tenant's when `tenant` is None."""
        query = select(quarantine).order_by(quarantine.c.id.desc()).limit(limit)
        if tenant is not None:
            query = query.where(quarantine.c.tenant == tenant)
        with self._read() as conn:
            return [_quarantined(row) for row in conn.execute(query)]

    def get_quarantined(self, quarantine_id: int) -> QuarantinedRecord | None:
        with self._read() as conn:
            row = conn.execute(select(quarantine).where(quarantine.c.id == quarantine_id)).first()
        return None if row is None else _quarantined(row)

    @staticmethod
    def release_quarantined(conn: Connection, quarantine_id: int) -> None:
        """Drop a quarantined record whose re-submission opened its cases, in that transaction (`conn`): its
        raw bytes now live with its alerts."""
        conn.execute(quarantine.delete().where(quarantine.c.id == quarantine_id))


def _quarantined(row: Row[Any]) -> QuarantinedRecord:
    rejection = Rejection(
        source=row.source, line=row.line, reason=row.reason, field=row.field, raw=row.raw, format=row.format
    )
    return QuarantinedRecord(id=row.id, received_at=row.received_at, tenant=row.tenant, rejection=rejection)


_INSERT_QUARANTINE = quarantine.insert().returning(quarantine.c.id, sort_by_parameter_order=True)
