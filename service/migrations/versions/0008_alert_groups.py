"""grouping keys of cases, so an alert storm joins one case

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from soctriage.service.store.columns import UTCDateTime

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_groups",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column(
            "key_hash", sa.String(64), nullable=False, comment="sha256 of the grouping rule and its values"
        ),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_alert_groups_case_id_cases"),
        sa.PrimaryKeyConstraint("tenant", "key_hash", "case_id", name="pk_alert_groups"),
    )


def downgrade() -> None:
    op.drop_table("alert_groups")
