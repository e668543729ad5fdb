"""alerts dedupe per tenant (primary key tenant, id instead of id); quarantine rows name their tenant

A vendor alert id was unique across tenants: one tenant's alert made another tenant's genuine copy a 422
("already received for another tenant"), which told the second tenant the first had it and let the first block
the second's intake. Each tenant now has its own copy and its own case.

The quarantine gets the tenant whose intake rejected each record, so each tenant's admin can list, show and
re-submit its own; rows from before this revision have none (only the command line, which sees every tenant,
lists them).

Downgrading fails while two tenants hold the same alert id: that state cannot exist under the old key.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite can only change a primary key by copying the table; PostgreSQL alters it in place.
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("pk_alerts", type_="primary")
        batch.create_primary_key("pk_alerts", ["tenant", "id"])
    op.add_column(
        "quarantine",
        sa.Column(
            "tenant", sa.String(128), nullable=True, comment="whose intake rejected it; NULL before 0007"
        ),
    )
    op.create_index("ix_quarantine_tenant_id", "quarantine", ["tenant", "id"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_tenant_id", table_name="quarantine")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("tenant")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("pk_alerts", type_="primary")
        batch.create_primary_key("pk_alerts", ["id"])
