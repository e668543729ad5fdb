"""guard: per-tenant action budgets shared by every process on the database

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from soctriage.service.store.columns import UTCDateTime

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "action_budget",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("limit_id", sa.String(64), nullable=False),
        sa.Column(
            "action_key", sa.Text(), nullable=False, comment="the action's idempotency key: it counts once"
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_action_budget"),
    )
    op.create_index("ix_action_budget_tenant_limit_id_at", "action_budget", ["tenant", "limit_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_action_budget_tenant_limit_id_at", table_name="action_budget")
    op.drop_table("action_budget")
