"""console: the case queue's columns (title, host, user, severity, disposition) and its (tenant, created_at) index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from soctriage.service.store.schema import QUEUE_TEXT, queue_columns

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("title", sa.String(QUEUE_TEXT), nullable=True))
        batch.add_column(sa.Column("hostname", sa.String(QUEUE_TEXT), nullable=True))
        batch.add_column(sa.Column("user_name", sa.String(QUEUE_TEXT), nullable=True))
        batch.add_column(
            sa.Column(
                "severity",
                sa.String(32),
                nullable=True,
                comment="the verdict's severity label, else the vendor's",
            )
        )
        batch.add_column(
            sa.Column("disposition", sa.String(32), nullable=True, comment="the verdict's disposition")
        )
    op.create_index("ix_cases_tenant_created_at", "cases", ["tenant", "created_at"])
    _backfill()


def _backfill() -> None:
    """Existing cases get their queue columns from their alert and verdict, a batch at a time."""
    conn = op.get_bind()
    cases = sa.table(
        "cases",
        sa.column("id", sa.String),
        sa.column("verdict", sa.JSON),
        *(
            sa.column(name, sa.String)
            for name in ("title", "hostname", "user_name", "severity", "disposition")
        ),
    )
    alerts = sa.table("alerts", sa.column("case_id", sa.String), sa.column("normalized", sa.JSON))
    names = ("title", "hostname", "user_name", "severity", "disposition")
    update = (
        cases.update()
        .where(cases.c.id == sa.bindparam("case_id"))
        .values({name: sa.bindparam(f"v_{name}") for name in names})
    )
    last = ""
    while True:
        rows = conn.execute(
            sa.select(cases.c.id, cases.c.verdict, alerts.c.normalized)
            .select_from(cases.join(alerts, alerts.c.case_id == cases.c.id))
            .where(cases.c.id > last)
            .order_by(cases.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        batch = []
        for row in rows:
            values = queue_columns(row.normalized or {}, row.verdict)
            batch.append({"case_id": row.id, **{f"v_{k}": v for k, v in values.items()}})
        conn.execute(update, batch)
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index("ix_cases_tenant_created_at", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        for name in ("disposition", "severity", "user_name", "hostname", "title"):
            batch.drop_column(name)
