"""Property-based fuzz (Hypothesis) of intake and the JSON routes, in process, on SQLite and PostgreSQL, with what
schemathesis does not generate: lone surrogates, NUL, numbers of thousands of digits, NaN and infinity, JSON
nested thousands deep, arbitrary bytes. No input may cause a 5xx or a traceback, and a valid alert sent with
hostile records is still accepted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_support import alert_variants
from soctriage.service.api.app import create_app
from soctriage.service.cli import app
from soctriage.service.config import Settings
from soctriage.service.domain import Alert
from soctriage.service.ingest import normalize_bytes
from typer.testing import CliRunner

BENIGN = "crowdstrike-test-detection.json"
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)

# Any code point: lone surrogates (category Cs) and NUL are what broke the ledger hash and PostgreSQL.
hostile_text = st.text(
    st.characters(exclude_categories=())
    | st.characters(categories=["Cs"])
    | st.sampled_from("\x00\x1b\u2028"),
    max_size=20,
)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | hostile_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def hostile_records(draw: st.DrawFn) -> bytes:
    """One line of hostile input: JSON (escaped, so surrogates and NaN survive as text), deep nesting, or bytes."""
    kind = draw(st.sampled_from(["json", "alert-with", "deep", "number", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    if kind == "deep":
        depth = draw(st.integers(min_value=90, max_value=4000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" * (opener != "[") + closer * depth).encode()
    if kind == "number":  # as text: Python will not even format an int this long
        digits = "9" * draw(st.integers(min_value=4200, max_value=6000))
        return b'{"metadata": {"eventType": "DetectionSummaryEvent"}, "n": -' + digits.encode() + b"}"
    value = draw(json_values)
    if kind == "alert-with":  # hostile content inside an otherwise valid alert
        record = json.loads(next(alert_variants(1, [BENIGN])))
        record["event"][draw(hostile_text)] = value
        record["event"]["CompositeId"] = draw(hostile_text) or "x"
        value = record
    return json.dumps(value, ensure_ascii=True).encode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    database = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    with TestClient(
        create_app(Settings(home=tmp_path / "home", database_url=database), auth_enabled=False),
        raise_server_exceptions=False,
    ) as client:
        yield client


def test_intake_of_hostile_records_never_fails_and_keeps_the_valid_alert(service: TestClient) -> None:
    good = json.dumps(json.loads(next(alert_variants(1, [BENIGN])))).encode()
    [good_id] = [alert.id for alert in normalize_bytes(good, "good") if isinstance(alert, Alert)]

    @given(records=st.lists(hostile_records(), min_size=1, max_size=5))
    @FUZZ
    def fuzz(records: list[bytes]) -> None:
        # The valid alert comes first: a body that starts with `[` is read as one JSON array.
        response = service.post("/v1/alerts", content=b"\n".join([good, *records]))
        assert response.status_code == 202, response.text
        report = response.json()
        assert report["accepted"][0]["alert_id"] == good_id
        assert all(rejected["quarantine_id"] for rejected in report["rejected"])

    fuzz()


def test_the_cli_reads_hostile_records_without_a_traceback(tmp_path: Path) -> None:
    good = json.dumps(json.loads(next(alert_variants(1, [BENIGN])))).encode()
    path = tmp_path / "alerts.jsonl"

    @given(records=st.lists(hostile_records(), min_size=1, max_size=5))
    @FUZZ
    def fuzz(records: list[bytes]) -> None:
        path.write_bytes(b"\n".join([good, *records]))
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SOCTRIAGE_HOME", str(tmp_path / "home"))
            env.delenv("SOCTRIAGE_DATABASE_URL", raising=False)
            result = CliRunner().invoke(app, ["normalize", str(path)])
        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert json.loads(result.stdout.splitlines()[0])["source"]["format"] == "crowdstrike"

    fuzz()


ROUTES = [
    ("/v1/cases/{case}/chat", lambda v: {"question": v}),
    ("/v1/cases/{case}/feedback", lambda v: {"disposition": "false_positive", "note": v, "reason_code": v}),
    ("/v1/cases/{case}/actions/A1/decision", lambda v: {"approve": False, "reason": v}),
    (
        "/v1/chat/completions",
        lambda v: {"model": "case:{case}", "messages": [{"role": "user", "content": v}]},
    ),
    ("/v1/chat/completions", lambda v: {"model": v, "messages": [{"role": "user", "content": "hi"}]}),
]


def test_no_json_route_fails_on_hostile_values(service: TestClient) -> None:
    [accepted] = service.post("/v1/alerts", content=next(alert_variants(1, [BENIGN]))).json()["accepted"]
    case = accepted["case_id"]

    @given(route=st.sampled_from(ROUTES), value=json_values, case_id=hostile_text)
    @FUZZ
    def fuzz(route: tuple[str, Any], value: Any, case_id: str) -> None:
        path, body = route
        target = case if case_id == "" else case_id.replace("/", "")
        text = json.dumps(body(value), ensure_ascii=True).replace("{case}", case)
        for where in (path.replace("{case}", case), path.replace("{case}", json.dumps(target)[1:-1])):
            response = service.post(where, content=text, headers={"Content-Type": "application/json"})
            assert response.status_code < 500, (where, text[:200], response.text[:200])

    fuzz()
