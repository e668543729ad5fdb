"""Schemathesis fuzzes every route of the OpenAPI schema against a real `soctriage serve`, on SQLite and on
PostgreSQL, with valid and invalid inputs and any code point (lone surrogates and NUL included): no input may
cause a 5xx. Bounded (few examples per operation) so it finishes in seconds."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from service_support import free_port, service_env, start, wait_healthy

TOKEN = "schemathesis-admin-token"


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: object, value: object) -> bytes:
    return value.encode() if isinstance(value, str) else str(value).encode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api_schema(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    database = (
        {"SOCTRIAGE_DATABASE_URL": request.getfixturevalue("pg_url")} if request.param == "postgres" else {}
    )
    env = service_env(
        folder / "home",
        SOCTRIAGE_AUTH="on",
        SOCTRIAGE_API_KEYS=f'["fuzz:acme:admin:{digest}"]',
        SOCTRIAGE_DECISION_WAIT_S="1",
        SOCTRIAGE_SQLITE_SYNCHRONOUS="NORMAL",
        **database,
    )
    port = free_port()
    server = start(["serve", "--port", str(port), "--workers", "2"], env, folder / "serve.log")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server)
        schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
        schema.config.generation.update(modes=list(GenerationMode))  # invalid inputs too
        schema.config.generation.codec = None  # any code point, not only what UTF-8 can encode
        yield schema
    finally:
        server.kill()
        server.wait(timeout=10)


def test_no_input_causes_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    # Driven by hand (not schemathesis' pytest plugin) so it does not depend on pytest internals.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 7
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        fuzz()
    assert not failures, failures
