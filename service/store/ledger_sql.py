"""The statements of a ledger append, run on the database driver's own connection.

An append is the store's hottest path (every step of every triage writes one), and SQLAlchemy's per-statement
machinery costs about 50 µs where the driver needs 3. These statements run on the DBAPI connection, inside a
transaction SQLAlchemy opened or `engine.driver_transaction` did (BEGIN IMMEDIATE on SQLite, a row lock on
PostgreSQL either way), so atomicity and locking are unchanged; only the bookkeeping is skipped. Column names follow
`schema.py`; the ledger tests exercise these statements on both back-ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

# (case_id, seq, ts, ts_text, actor, kind, payload_text, prev_hash, hash): ts as a datetime and as the
# `format_ts` text its hash covered, which SQLite stores (see columns.UTCDateTime); psycopg adapts the datetime.
EntryRow = tuple[str, int, datetime, str, str, str, str, str, str]

_SQL = {
    "sqlite": (
        "SELECT head_seq, head_hash FROM cases WHERE id = ?",
        "INSERT INTO ledger (case_id, seq, ts, actor, kind, payload, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        "UPDATE cases SET head_seq = ?, head_hash = ?, updated_at = ? WHERE id = ?",
    ),
    "postgresql": (
        "SELECT head_seq, head_hash FROM cases WHERE id = %s FOR UPDATE",
        "INSERT INTO ledger (case_id, seq, ts, actor, kind, payload, prev_hash, hash)"
        " VALUES (%s, %s, %s, %s, %s, %s::json, %s, %s)",
        "UPDATE cases SET head_seq = %s, head_hash = %s, updated_at = %s WHERE id = %s",
    ),
}


class LedgerStatements:
    """Lock a case's head, insert chained entries, move the head: on `conn`'s open transaction."""

    def __init__(self, driver: Any, dialect: str) -> None:
        """`driver`: the database driver's connection, in a transaction; `dialect`: "sqlite" or "postgresql"."""
        self._driver = driver
        self._lock_sql, self._insert_sql, self._move_sql = _SQL[dialect]
        self._text_times = dialect == "sqlite"

    @classmethod
    def on(cls, conn: Connection) -> LedgerStatements:
        """The statements on the driver connection under `conn`, inside the transaction `conn` opened."""
        return cls(conn.connection.driver_connection, conn.dialect.name)

    def lock_head(self, case_id: str) -> tuple[int, str] | None:
        cursor = self._driver.cursor()
        try:
            cursor.execute(self._lock_sql, (case_id,))
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else (int(row[0]), str(row[1]))

    def insert(self, rows: Sequence[EntryRow]) -> None:
        if self._text_times:
            params = [(c, seq, text, a, k, p, prev, h) for c, seq, _, text, a, k, p, prev, h in rows]
        else:
            params = [(c, seq, ts, a, k, p, prev, h) for c, seq, ts, _, a, k, p, prev, h in rows]
        cursor = self._driver.cursor()
        try:
            if len(params) == 1:
                cursor.execute(self._insert_sql, params[0])
            else:
                cursor.executemany(self._insert_sql, params)
        finally:
            cursor.close()

    def move_head(self, last: EntryRow) -> None:
        """Point the case's head at `last`, the newest row inserted."""
        case_id, seq, ts, ts_text, *_, head_hash = last
        cursor = self._driver.cursor()
        try:
            cursor.execute(self._move_sql, (seq, head_hash, ts_text if self._text_times else ts, case_id))
        finally:
            cursor.close()
