"""Engines for SQLite and PostgreSQL, and the Alembic upgrade that runs when a store opens."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from soctriage.service.domain import canonical_json
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

# Execution option asking the SQLite `begin` hook for BEGIN IMMEDIATE: the write lock is taken before the
# first read, so a writer never reads a ledger head that another writer is about to move.
WRITE_LOCK = "soctriage_write_lock"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant works; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK_KEY = 0x50C7_1A6E


def create_store_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine for `url`. SQLite files get WAL, a busy timeout, foreign keys and explicit BEGINs."""
    sa_url = make_url(url)
    options: dict[str, Any] = {"json_serializer": canonical_json}
    if sa_url.get_backend_name() != "sqlite":
        return create_engine(sa_url, pool_pre_ping=True, **options)
    if sa_url.database in (None, "", ":memory:"):
        raise ValueError(f"{url}: the store needs a SQLite file, not an in-memory database")
    Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sa_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **options)
    _configure_sqlite(engine, sqlite_synchronous)
    return engine


def store_label(url: str) -> str:
    """Where a store is, for people: the SQLite file, or the server URL without its password."""
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        return f"{sa_url.database} (SQLite)"
    return f"{sa_url.set(drivername=sa_url.get_backend_name()).render_as_string(hide_password=True)} (PostgreSQL)"


def store_exists(url: str) -> bool:
    """Whether a store was ever created at `url`: the SQLite file exists, or the server database has our schema.
    Asking creates nothing (a SQLite file is only opened when it is there)."""
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        return bool(sa_url.database) and Path(sa_url.database).is_file()
    engine = create_engine(sa_url)
    try:
        return inspect(engine).has_table("cases")
    finally:
        engine.dispose()


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
        raise ValueError(f"sqlite synchronous mode {synchronous!r}: expected FULL, NORMAL, EXTRA or OFF")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN is deferred and issued late; turn it off and begin explicitly below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _use_wal(cursor)
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: this runs once per transaction, and the DBAPI call is several times cheaper.
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_LOCK) else "BEGIN"
        conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL, unless it already is. WAL is a property of the file, so only the first
    connections to a new file switch it; that switch needs the file to itself, and SQLite answers "database is
    locked" at once, without waiting, when several first connections try together. They retry until the busy
    timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that may write: BEGIN IMMEDIATE on SQLite; PostgreSQL callers lock rows themselves."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_LOCK: True})
        with conn.begin():
            yield conn


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[Any]:
    """A write transaction on the database driver's own connection, for the store's hottest write (a ledger
    append, many per triage): SQLAlchemy's connection, transaction and event bookkeeping cost more than the
    statements. It locks as `write_transaction` does: BEGIN IMMEDIATE on SQLite; on PostgreSQL the driver opens
    the transaction and the caller locks rows. Yields the driver connection; commits, or rolls back on error."""
    pooled = engine.raw_connection()
    driver: Any = pooled.driver_connection
    try:
        if engine.dialect.name == "sqlite":
            driver.execute("BEGIN IMMEDIATE")
        yield driver
        driver.commit()
    except BaseException:
        # A rollback that fails leaves the pool to discard the connection when it is returned.
        with suppress(Exception):
            driver.rollback()
        raise
    finally:
        pooled.close()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe when several processes open the same database at once."""
    with as_file(files("soctriage.service") / "migrations") as script_dir, write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        config = Config()
        config.set_main_option("script_location", str(script_dir))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
