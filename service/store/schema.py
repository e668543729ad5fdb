"""The tables of the case store (SQLAlchemy Core). Alembic migrations create them; this module queries them.

Keep this file and `service/migrations/versions/` in step: tests compare the migrated database with this
metadata on SQLite and PostgreSQL. New tables (jobs, approvals, ...) arrive as new Alembic revisions and are
declared here on the same `metadata`.
"""

from __future__ import annotations

from typing import Any

from soctriage.service.domain import GENESIS_HASH
from soctriage.service.store.columns import UTCDateTime
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

# Constraint names are fixed so later migrations (and SQLite batch mode) can refer to them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

QUEUE_TEXT = 512  # queue columns keep this many characters of a title, host or user name

# Plain JSON, never JSONB: JSONB rewrites numbers and rejects \u0000, so a payload read back could hash
# differently from the one that was written.
json_doc = JSON(none_as_null=True)

cases = Table(
    "cases",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("verdict", json_doc, nullable=True),
    Column("status_times", json_doc, nullable=False, comment="status -> first time reached (format_ts)"),
    Column("assignee", String(256), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("head_seq", Integer, nullable=False, server_default="0"),
    Column("head_hash", String(64), nullable=False, server_default=GENESIS_HASH),
    # What the case queue shows, filters and searches, copied from the alert when the case opens and from the
    # verdict when it is set: the queue never parses alert JSON (10,000 cases must page in milliseconds).
    Column("title", String(QUEUE_TEXT), nullable=True),
    Column("hostname", String(QUEUE_TEXT), nullable=True),
    Column("user_name", String(QUEUE_TEXT), nullable=True),
    Column("severity", String(32), nullable=True, comment="the verdict's severity label, else the vendor's"),
    Column("disposition", String(32), nullable=True, comment="the verdict's disposition"),
    Index(None, "tenant", "status"),
    Index(None, "created_at"),
    Index(None, "tenant", "created_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(255), nullable=False),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False, index=True),
    Column("tenant", String(128), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("vendor", String(128), nullable=False),
    Column("product", String(128), nullable=False),
    Column("format", String(32), nullable=False),
    Column("vendor_alert_id", String(512), nullable=True),
    Column("raw", Text, nullable=False),
    Column("raw_sha256", String(64), nullable=False),
    Column("normalized", json_doc, nullable=False, comment="the Alert without raw"),
    # Re-deliveries dedupe per tenant: another tenant's copy of the same vendor alert is its own case.
    PrimaryKeyConstraint("tenant", "id"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", json_doc, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    PrimaryKeyConstraint("case_id", "seq"),
    CheckConstraint("seq >= 1", name="seq_positive"),
)

quarantine = Table(
    "quarantine",
    metadata,
    # SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("source", Text, nullable=False),
    Column("line", Integer, nullable=True),
    Column("format", String(32), nullable=True),
    Column("reason", Text, nullable=False),
    Column("field", Text, nullable=True),
    Column("raw", LargeBinary, nullable=False),
    Column("tenant", String(128), nullable=True, comment="whose intake rejected it; NULL before 0007"),
    Index(None, "received_at"),
    Index(None, "tenant", "id"),
)

jobs = Table(
    "jobs",
    metadata,
    # The embedded queue (SQLite); with PostgreSQL the queue is procrastinate's, and this table stays empty.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False, index=True),
    Column("task", String(32), nullable=False),
    Column("args", json_doc, nullable=False),
    Column("status", String(16), nullable=False, comment="queued, running, done, failed"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("worker", String(128), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True, comment="a running job past this is re-claimed"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("error", Text, nullable=True),
    Index(None, "status", "id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column(
        "key_sha256", String(64), nullable=False, comment="sha256 of the token; the token is never stored"
    ),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

action_budget = Table(
    "action_budget",
    metadata,
    # The guard's per-tenant action budgets (policy `rate_limits`), shared by every process on this database:
    # one row per action counted, kept while it is inside its limit's window.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant", String(128), nullable=False),
    Column("limit_id", String(64), nullable=False),
    Column("action_key", Text, nullable=False, comment="the action's idempotency key: it counts once"),
    Column("at", UTCDateTime(), nullable=False),
    Index(None, "tenant", "limit_id", "at"),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    # Token buckets shared by every process on this database (the global model-call limit).
    Column("name", String(64), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    # Signed checkpoints (service/store/checkpoint.py); each is also appended to a file beside the store.
    Column("origin", String(255), nullable=False, comment="the log: signing key name and tenant scope"),
    Column("number", Integer, nullable=False, comment="1, 2, ... within the origin"),
    Column("tenant", String(128), nullable=True, comment="the scope's tenant; NULL means every tenant"),
    Column("tree_size", BigInteger, nullable=False),
    Column("cases", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("key_fingerprint", String(64), nullable=False, comment="sha256 of the Ed25519 public key"),
    Column("note", Text, nullable=False, comment="the C2SP signed note, byte for byte"),
    PrimaryKeyConstraint("origin", "number"),
    Index(None, "tenant", "created_at"),
)

ledger_head_log = Table(
    "ledger_head_log",
    metadata,
    # The leaves of each origin's Merkle tree, append-only: one row each time a checkpoint saw a case head
    # that was new or had moved. No foreign key: the log must outlive a deleted case to testify about it.
    Column("origin", String(255), nullable=False),
    Column("idx", BigInteger, nullable=False, comment="leaf index, from 0"),
    Column("case_id", String(64), nullable=False),
    Column("head_seq", Integer, nullable=False),
    Column("head_hash", String(64), nullable=False),
    PrimaryKeyConstraint("origin", "idx"),
)


def queue_columns(alert: dict[str, Any], verdict: dict[str, Any] | None) -> dict[str, str | None]:
    """The case queue's columns of a case, from its alert and verdict as stored (JSON)."""

    def cut(value: Any) -> str | None:
        return str(value)[:QUEUE_TEXT] if value not in (None, "") else None

    shown = verdict or {}
    return {
        "title": cut(alert.get("title")),
        "hostname": cut((alert.get("device") or {}).get("hostname")),
        "user_name": cut((alert.get("user") or {}).get("name")),
        "severity": cut(((shown or alert).get("severity") or {}).get("label")),
        "disposition": cut(shown.get("disposition")),
    }


suppression_rules = Table(
    "suppression_rules",
    metadata,
    # Analyst-taught suppression rules (tools/suppression.py): a structured alert key an analyst called
    # benign. A candidate collects the cases of feedback with one key; it becomes active at the configured
    # count (or at once when the analyst asks for a rule). Revoked rows stay: the ledger cites them.
    Column("id", String(32), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("key_hash", String(64), nullable=False, comment="sha256 of the key's canonical JSON"),
    Column("match", JSON, nullable=False, comment="the structured fields an alert must carry, exactly"),
    Column("disposition", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("author", String(255), nullable=False),
    Column("reason", Text, nullable=True),
    Column("source_cases", JSON, nullable=False, comment="the cases the rule was taught on, in order"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("activated_at", UTCDateTime(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("revoked_by", String(255), nullable=True),
    Column("revoke_reason", Text, nullable=True),
    Column("hits", Integer, nullable=False, default=0),
    Column("last_hit_at", UTCDateTime(), nullable=True),
    CheckConstraint("status IN ('candidate', 'active', 'revoked')", name="status"),
    Index(None, "tenant", "key_hash"),
)

alert_groups = Table(
    "alert_groups",
    metadata,
    # The grouping keys each case was seen with (service/store/grouping.py), so a storm's next alert finds its
    # case with one indexed lookup. Times are alert times: the span of the case's alerts with this key.
    Column("tenant", String(128), nullable=False),
    Column("key_hash", String(64), nullable=False, comment="sha256 of the grouping rule and its values"),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("first_at", UTCDateTime(), nullable=False),
    Column("last_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("tenant", "key_hash", "case_id"),
)
