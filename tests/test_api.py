"""The HTTP API in-process (FastAPI TestClient, in-process workers as `serve` runs them): intake, auth and
roles, tenant isolation on every route, approvals, operations endpoints."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_support import alert_variants, sample_bytes
from soctriage.service.api.app import create_app
from soctriage.service.auth import create_key
from soctriage.service.cli_service import BackgroundWorker
from soctriage.service.config import Settings
from soctriage.service.domain import FINAL_CASE_STATUSES
from soctriage.service.store import Store

CONFIG_TOKEN = "config-admin-token-for-tests"
LSASS = "crowdstrike-lsass-dump.json"  # pauses for approval of isolate_host on DC01
BENIGN = "crowdstrike-test-detection.json"  # closes as benign


class Api:
    """A running app with keys for two tenants."""

    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    def call(self, method: str, path: str, key: str | None, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys[key]}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def post_alerts(self, key: str, body: bytes, **params: str) -> Any:
        return self.call("POST", "/v1/alerts", key, content=body, params=params)

    def wait_case(self, key: str, case_id: str, states: frozenset[str], timeout_s: float = 20) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            view = self.call("GET", f"/v1/cases/{case_id}", key).json()
            if view["case"]["status"] in states or time.monotonic() > deadline:
                return view
            time.sleep(0.05)


def make_settings(home: Path, **extra: Any) -> Settings:
    digest = hashlib.sha256(CONFIG_TOKEN.encode()).hexdigest()
    return Settings(
        home=home,
        api_keys=[f"cfg-admin:acme:admin:{digest}"],
        job_lease_s=5,
        decision_wait_s=15,
        worker_concurrency=4,
        **extra,
    )


@pytest.fixture
def api(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Api]:
    extra = getattr(request, "param", {})
    settings = make_settings(tmp_path / "home", **extra)
    keys = {"acme-admin": CONFIG_TOKEN}
    with Store.open(settings) as store:
        for tenant in ("acme", "globex"):
            for role in ("viewer", "analyst", "approver"):
                keys[f"{tenant}-{role}"] = create_key(store, tenant, role, f"{tenant}-{role}")[1]
        keys["globex-admin"] = create_key(store, "globex", "admin", "globex-admin")[1]
    worker = BackgroundWorker(settings, settings.worker_concurrency)
    worker.start()
    try:
        with TestClient(create_app(settings, auth_enabled=True)) as client:
            yield Api(client, keys)
    finally:
        worker.stop()


VERDICT_STATES = FINAL_CASE_STATUSES | {"awaiting_approval"}


# --- intake ---------------------------------------------------------------------------------------------------


def test_one_alert_an_array_and_jsonl_are_accepted_and_redelivery_is_idempotent(api: Api) -> None:
    one, two, three, four = alert_variants(4, [BENIGN])
    first = api.post_alerts("acme-analyst", one)
    assert first.status_code == 202
    [accepted] = first.json()["accepted"]
    array = b"[" + two + b"," + three + b"]"
    assert [a["duplicate"] for a in api.post_alerts("acme-analyst", array).json()["accepted"]] == [
        False,
        False,
    ]
    jsonl = json.dumps(json.loads(four)).encode() + b"\n" + json.dumps(json.loads(one)).encode() + b"\n"
    body = api.post_alerts("acme-analyst", jsonl, format="crowdstrike").json()
    assert [a["duplicate"] for a in body["accepted"]] == [False, True]
    assert body["accepted"][1]["case_id"] == accepted["case_id"]
    cases = api.call("GET", "/v1/cases", "acme-viewer").json()
    assert len(cases) == 4
    view = api.wait_case("acme-viewer", accepted["case_id"], VERDICT_STATES)
    assert view["case"]["status"] == "closed"


def test_rejected_records_name_line_and_field_and_are_quarantined(api: Api) -> None:
    good = json.dumps(json.loads(next(alert_variants(1, [BENIGN])))).encode()
    body = good + b"\n{not json\n" + b'{"some": "thing"}\n'
    response = api.post_alerts("acme-analyst", body)
    assert response.status_code == 202
    report = response.json()
    assert len(report["accepted"]) == 1
    assert [r["line"] for r in report["rejected"]] == [2, 3]
    assert all(r["quarantine_id"] and r["message"].startswith("POST /v1/alerts:") for r in report["rejected"])
    bad = api.post_alerts(
        "acme-analyst", b'{"metadata": {"eventType": "DetectionSummaryEvent"}}', format="crowdstrike"
    )
    assert bad.status_code == 422
    [rejection] = bad.json()["rejected"]
    assert rejection["field"] and rejection["field"] in rejection["message"]
    unknown = api.post_alerts("acme-analyst", good, format="splunk")
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["query", "format"]


# --- auth and roles -------------------------------------------------------------------------------------------


def test_keys_are_required_and_roles_are_enforced(api: Api) -> None:
    body = next(alert_variants(1, [BENIGN]))
    assert api.call("GET", "/v1/cases", None).status_code == 401
    assert api.client.get("/v1/cases", headers={"Authorization": "Bearer stk_nope_nope"}).status_code == 401
    assert api.client.get("/v1/cases", headers={"X-API-Key": api.keys["acme-viewer"]}).status_code == 200
    assert api.post_alerts("acme-viewer", body).status_code == 403
    assert api.post_alerts("acme-admin", body).status_code == 202  # a key from config
    # Metrics count every tenant: only an operator key reads them, never a tenant's, not even its admin.
    assert api.call("GET", "/metrics", "acme-analyst").status_code == 403
    assert api.call("GET", "/metrics", "acme-admin").status_code == 403
    with Store.open(api.client.app.state.settings) as store:
        api.keys["operator"] = create_key(store, "ops", "operator", "prometheus")[1]
    assert api.call("GET", "/v1/cases", "operator").status_code == 403
    metrics = api.call("GET", "/metrics", "operator")
    assert metrics.status_code == 200
    for name in ("soctriage_alerts_received_total", "soctriage_queue_depth", "soctriage_cases"):
        assert name in metrics.text
    assert api.client.get("/healthz").json()["status"] == "ok"
    assert "/v1/alerts" in api.client.get("/openapi.json").json()["paths"]
    assert api.client.get("/docs").status_code == 200


def test_no_route_shows_another_tenants_case_or_ledger(api: Api) -> None:
    [accepted] = api.post_alerts("acme-analyst", sample_bytes(LSASS)).json()["accepted"]
    case_id = accepted["case_id"]
    view = api.wait_case("acme-viewer", case_id, VERDICT_STATES)
    assert view["case"]["status"] == "awaiting_approval"
    entries_before = len(api.call("GET", f"/v1/cases/{case_id}/ledger", "acme-viewer").json())
    for key in ("globex-viewer", "globex-approver", "globex-admin"):
        assert api.call("GET", "/v1/cases", key).json() == []
        assert api.call("GET", f"/v1/cases/{case_id}", key).status_code == 404
        assert api.call("GET", f"/v1/cases/{case_id}/ledger", key).status_code == 404
        decision = api.call("POST", f"/v1/cases/{case_id}/actions/A2/decision", key, json={"approve": True})
        assert decision.status_code == 404
        assert case_id not in api.call("GET", "/v1/cases?status=awaiting_approval", key).text
    # The same vendor alert posted by another tenant is that tenant's own new case: it neither joins nor
    # reveals the first tenant's case, and the first tenant's intake cannot block it.
    other = api.post_alerts("globex-analyst", sample_bytes(LSASS))
    assert other.status_code == 202
    [theirs] = other.json()["accepted"]
    assert (theirs["alert_id"], theirs["duplicate"]) == (accepted["alert_id"], False)
    assert theirs["case_id"] != case_id and case_id not in other.text
    assert api.call("GET", f"/v1/cases/{theirs['case_id']}", "acme-viewer").status_code == 404
    again = api.post_alerts("globex-analyst", sample_bytes(LSASS)).json()["accepted"]
    assert again == [{**theirs, "duplicate": True}]
    assert len(api.call("GET", f"/v1/cases/{case_id}/ledger", "acme-viewer").json()) == entries_before


# --- approvals ------------------------------------------------------------------------------------------------


def _pending(view: dict, tool: str) -> str:
    return next(a["id"] for a in view["actions"] if a["tool"] == tool and a["status"] == "awaiting_approval")


def _notes(api: Api, case_id: str) -> list[dict]:
    entries = api.call("GET", f"/v1/cases/{case_id}/ledger", "acme-viewer").json()
    return [e for e in entries if e["kind"] in ("note", "approval_decided")]


def test_approval_over_http_resumes_the_case_and_refusals_are_ledgered(api: Api) -> None:
    [accepted] = api.post_alerts("acme-analyst", sample_bytes(LSASS)).json()["accepted"]
    case_id = accepted["case_id"]
    view = api.wait_case("acme-viewer", case_id, VERDICT_STATES)
    action = _pending(view, "isolate_host")
    path = f"/v1/cases/{case_id}/actions/{action}/decision"

    notes_before = _notes(api, case_id)
    refused = api.call("POST", path, "acme-analyst", json={"approve": True})
    assert refused.status_code == 403
    assert _notes(api, case_id) == notes_before  # a key that may not decide writes nothing into the case

    applied = api.call("POST", path, "acme-approver", json={"approve": True, "reason": "confirmed"})
    assert applied.status_code == 200, applied.text
    result = applied.json()["result"]
    assert next(a for a in result["actions"] if a["id"] == action)["status"] == "executed"

    again = api.call("POST", path, "acme-approver", json={"approve": False})
    assert again.status_code == 409
    notes = _notes(api, case_id)
    decided = [n for n in notes if n["kind"] == "approval_decided"]
    assert [(d["actor"], d["payload"]["outcome"]) for d in decided] == [("human:acme-approver", "approved")]
    assert notes[-1]["payload"]["outcome"] == "refused" and "executed" in notes[-1]["payload"]["reason"]
    assert api.call("POST", path, "acme-approver", json={"approve": "maybe"}).status_code == 422
    unknown = api.call(
        "POST", f"/v1/cases/{case_id}/actions/A99/decision", "acme-approver", json={"approve": True}
    )
    assert unknown.status_code == 404


@pytest.fixture
def short_ttl_policy(tmp_path: Path) -> Path:
    from soctriage.tools.policy import load_policy

    path = tmp_path / "policy.json"
    path.write_text(load_policy(None).model_copy(update={"approval_ttl_s": 0.5}).model_dump_json())
    return path


def test_a_decision_on_an_expired_action_is_refused_and_recorded(
    tmp_path: Path, short_ttl_policy: Path
) -> None:
    settings = make_settings(tmp_path / "home", policy_path=short_ttl_policy, auth="on")
    Store.open(settings).close()  # as `serve` does: create the database before two threads open it
    worker = BackgroundWorker(settings, 2)
    worker.start()
    try:
        with TestClient(create_app(settings)) as client:
            api = Api(client, {"acme-admin": CONFIG_TOKEN})
            [accepted] = api.post_alerts("acme-admin", sample_bytes(LSASS)).json()["accepted"]
            case_id = accepted["case_id"]
            view = api.wait_case("acme-admin", case_id, VERDICT_STATES)
            action = _pending(view, "isolate_host")
            time.sleep(0.6)
            path = f"/v1/cases/{case_id}/actions/{action}/decision"
            response = api.call("POST", path, "acme-admin", json={"approve": True})
            assert response.status_code == 409 and "expired" in response.json()["detail"]
            entries = api.call("GET", f"/v1/cases/{case_id}/ledger", "acme-admin").json()
            [decided] = [
                e for e in entries if e["kind"] == "approval_decided" and e["payload"]["action_id"] == action
            ]
            assert decided["payload"]["outcome"] == "expired"
            assert not [
                e for e in entries if e["kind"] == "action_executed" and e["payload"]["action_id"] == action
            ]
    finally:
        worker.stop()


def test_an_approval_nobody_decides_expires_and_the_case_is_escalated(
    tmp_path: Path, short_ttl_policy: Path
) -> None:
    from soctriage.service.queue import open_queue
    from soctriage.service.worker import expire_overdue_approvals

    settings = make_settings(tmp_path / "home", policy_path=short_ttl_policy, auth="on")
    Store.open(settings).close()
    worker = BackgroundWorker(settings, 2)
    worker.start()
    try:
        with TestClient(create_app(settings)) as client, Store.open(settings) as store:
            api = Api(client, {"acme-admin": CONFIG_TOKEN})
            [accepted] = api.post_alerts("acme-admin", sample_bytes(LSASS)).json()["accepted"]
            case_id = accepted["case_id"]
            view = api.wait_case("acme-admin", case_id, VERDICT_STATES)
            pending = {a["id"] for a in view["actions"] if a["status"] == "awaiting_approval"}
            assert _pending(view, "isolate_host") in pending
            queue = open_queue(settings, store)
            assert expire_overdue_approvals(store, queue) == 0  # not yet past their deadline
            time.sleep(0.6)
            assert expire_overdue_approvals(store, queue) == len(pending)
            assert expire_overdue_approvals(store, queue) == 0  # already queued: not twice
            view = api.wait_case("acme-admin", case_id, frozenset({"escalated"}))
            assert view["case"]["status"] == "escalated"
            entries = api.call("GET", f"/v1/cases/{case_id}/ledger", "acme-admin").json()
            decided = [e for e in entries if e["kind"] == "approval_decided"]
            assert {(d["actor"], d["payload"]["outcome"]) for d in decided} == {("system", "expired")}
            assert {d["payload"]["action_id"] for d in decided} == pending
            notes = [e for e in entries if e["payload"].get("event") == "approval_expired"]
            assert {n["payload"]["action_id"] for n in notes} == pending
            executed = {e["payload"]["action_id"] for e in entries if e["kind"] == "action_executed"}
            assert not executed & pending
            assert not [e for e in entries if e["payload"].get("event") == "decision_refused"]
    finally:
        worker.stop()


def test_auth_can_be_switched_off_on_loopback_only_by_default() -> None:
    from soctriage.service.cli_service import auth_enabled

    settings = Settings()
    assert not auth_enabled(settings, "127.0.0.1") and not auth_enabled(settings, "::1")
    assert auth_enabled(settings, "0.0.0.0") and auth_enabled(settings, "10.1.2.3")
    assert auth_enabled(Settings(auth="on"), "127.0.0.1")
    assert not auth_enabled(Settings(auth="off"), "0.0.0.0")
