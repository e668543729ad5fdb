"""What every part of the store stands on: its engine, and a read that sees one snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine


class StoreBase:
    """The engine, and consistent reads; `Store` and its parts (opening cases, verifying chains, the
    quarantine) build on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # One snapshot for the whole read, so heads and entries agree while writers keep appending.
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn
