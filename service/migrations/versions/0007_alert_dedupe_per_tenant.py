"""alerts: deduplicate per tenant (primary key tenant, id instead of id)

A vendor alert id was unique across tenants: one tenant's alert made another tenant's genuine copy a 422
("already received for another tenant"), which told the second tenant the first had it and let the first block
the second's intake. Each tenant now has its own copy and its own case.

Downgrading fails while two tenants hold the same alert id: that state cannot exist under the old key.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
# TODO renumber: main's 0006 (suppression rules) comes first; then this revises "0006".
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite can only change a primary key by copying the table; PostgreSQL alters it in place.
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("pk_alerts", type_="primary")
        batch.create_primary_key("pk_alerts", ["tenant", "id"])


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("pk_alerts", type_="primary")
        batch.create_primary_key("pk_alerts", ["id"])
