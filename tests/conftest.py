"""Shared fixtures. PostgreSQL tests skip locally when no server answers, and fail under CI=true."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("SOCTRIAGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
# Retrieval in tests embeds with the instant hashing embedder; tests of the real model set it explicitly.
os.environ.setdefault("SOCTRIAGE_EMBEDDER", "hashing")


def _pg_connect(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    try:
        admin = _pg_connect(PG_ADMIN_URL)
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL required in CI but unreachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"soctriage_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_connect(PG_ADMIN_URL) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated SOCTRIAGE_HOME for one test, with no database URL inherited from the environment."""
    monkeypatch.setenv("SOCTRIAGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SOCTRIAGE_DATABASE_URL", raising=False)
    return tmp_path / "home"
