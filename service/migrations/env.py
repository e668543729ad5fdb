"""Alembic environment for the case store.

At run time `soctriage.service.store.engine.upgrade` passes an open connection in
`config.attributes["connection"]` (no alembic.ini involved). For authoring a new revision, run
`alembic -c service/migrations/alembic.ini revision --autogenerate -m "..."`; the database then comes
from `Settings` (SOCTRIAGE_DATABASE_URL or the SQLite file under SOCTRIAGE_HOME).
"""

from __future__ import annotations

from alembic import context
from soctriage.service.config import Settings
from soctriage.service.store.schema import metadata
from sqlalchemy.engine import Connection


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    from soctriage.service.store.engine import create_store_engine

    engine = create_store_engine(Settings().sqlalchemy_url)
    try:
        with engine.connect() as conn:
            _configure(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=Settings().sqlalchemy_url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    _run()
