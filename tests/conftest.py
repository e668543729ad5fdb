"""Shared fixtures. PostgreSQL tests skip locally when no server answers, and fail under CI=true."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import yaml
from service_support import free_port
from soctriage.tools.policy import DEFAULT_POLICY

PG_ADMIN_URL = os.environ.get("SOCTRIAGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
# Retrieval in tests embeds with the instant hashing embedder; tests of the real model set it explicitly.
os.environ.setdefault("SOCTRIAGE_EMBEDDER", "hashing")
# Tests written for one case per alert (variants of one sample are one incident to the grouping rules) run on
# the shipped policy with grouping off; tests of grouping point SOCTRIAGE_POLICY_PATH at the shipped policy.
if "SOCTRIAGE_POLICY_PATH" not in os.environ:
    _policy = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    _policy["grouping"]["enabled"] = False
    _policy_dir = tempfile.mkdtemp(prefix="soctriage-policy-")
    atexit.register(shutil.rmtree, _policy_dir, ignore_errors=True)
    os.environ["SOCTRIAGE_POLICY_PATH"] = str(Path(_policy_dir) / "policy.yaml")
    Path(os.environ["SOCTRIAGE_POLICY_PATH"]).write_text(yaml.safe_dump(_policy), encoding="utf-8")
# A test that forgets to pick a home must not write to the user's own store (the platform data folder).
if "SOCTRIAGE_HOME" not in os.environ:
    os.environ["SOCTRIAGE_HOME"] = tempfile.mkdtemp(prefix="soctriage-tests-")
    atexit.register(shutil.rmtree, os.environ["SOCTRIAGE_HOME"], ignore_errors=True)


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


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server on loopback (the `chroma` binary chromadb installs), for SOCTRIAGE_CHROMA_URL."""
    binary = Path(sys.executable).with_name("chroma")
    if not binary.exists():
        pytest.skip(f"no chroma server binary at {binary}")
    port = free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [str(binary), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the chroma server did not start within 30 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
