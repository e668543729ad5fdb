"""case store: cases, alerts, hash-chained ledger, quarantine

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from soctriage.service.store.columns import UTCDateTime

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.Column(
            "status_times", sa.JSON(), nullable=False, comment="status -> first time reached (format_ts)"
        ),
        sa.Column("assignee", sa.String(256), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("head_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("head_hash", sa.String(64), server_default=GENESIS_HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
    )
    op.create_index("ix_cases_tenant_status", "cases", ["tenant", "status"])
    op.create_index("ix_cases_created_at", "cases", ["created_at"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("vendor", sa.String(128), nullable=False),
        sa.Column("product", sa.String(128), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("vendor_alert_id", sa.String(512), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("raw_sha256", sa.String(64), nullable=False),
        sa.Column("normalized", sa.JSON(), nullable=False, comment="the Alert without raw"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_alerts_case_id_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_case_id", "alerts", ["case_id"])

    op.create_table(
        "ledger",
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("seq >= 1", name="ck_ledger_seq_positive"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_ledger_case_id_cases"),
        sa.PrimaryKeyConstraint("case_id", "seq", name="pk_ledger"),
    )

    op.create_table(
        "quarantine",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
    )
    op.create_index("ix_quarantine_received_at", "quarantine", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_received_at", table_name="quarantine")
    op.drop_table("quarantine")
    op.drop_table("ledger")
    op.drop_index("ix_alerts_case_id", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_cases_created_at", table_name="cases")
    op.drop_index("ix_cases_tenant_status", table_name="cases")
    op.drop_table("cases")
