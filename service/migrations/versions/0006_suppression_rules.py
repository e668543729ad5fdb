"""suppression rules an analyst taught through feedback

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from soctriage.service.store.columns import UTCDateTime

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppression_rules",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, comment="sha256 of the key's canonical JSON"),
        sa.Column(
            "match", sa.JSON(), nullable=False, comment="the structured fields an alert must carry, exactly"
        ),
        sa.Column("disposition", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "source_cases", sa.JSON(), nullable=False, comment="the cases the rule was taught on, in order"
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("activated_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(255), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("last_hit_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate', 'active', 'revoked')", name="ck_suppression_rules_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_suppression_rules"),
    )
    op.create_index("ix_suppression_rules_tenant_key_hash", "suppression_rules", ["tenant", "key_hash"])


def downgrade() -> None:
    op.drop_index("ix_suppression_rules_tenant_key_hash", table_name="suppression_rules")
    op.drop_table("suppression_rules")
