"""ledger: signed checkpoints and the Merkle log of case heads they commit to

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from soctriage.service.store.columns import UTCDateTime

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_checkpoints",
        sa.Column(
            "origin", sa.String(255), nullable=False, comment="the log: signing key name and tenant scope"
        ),
        sa.Column("number", sa.Integer(), nullable=False, comment="1, 2, ... within the origin"),
        sa.Column(
            "tenant", sa.String(128), nullable=True, comment="the scope's tenant; NULL means every tenant"
        ),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column(
            "key_fingerprint", sa.String(64), nullable=False, comment="sha256 of the Ed25519 public key"
        ),
        sa.Column("note", sa.Text(), nullable=False, comment="the C2SP signed note, byte for byte"),
        sa.PrimaryKeyConstraint("origin", "number", name="pk_ledger_checkpoints"),
    )
    op.create_index("ix_ledger_checkpoints_tenant_created_at", "ledger_checkpoints", ["tenant", "created_at"])
    op.create_table(
        "ledger_head_log",
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False, comment="leaf index, from 0"),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("head_seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("origin", "idx", name="pk_ledger_head_log"),
    )


def downgrade() -> None:
    op.drop_table("ledger_head_log")
    op.drop_index("ix_ledger_checkpoints_tenant_created_at", table_name="ledger_checkpoints")
    op.drop_table("ledger_checkpoints")
