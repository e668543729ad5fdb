"""The analyst console over HTTP (in-process, with the in-process workers `serve` runs): sign-in and session
cookie, CSRF and origin checks, the queue (filters, search, counts, live stamp, cursor paging, and the API's
cursor), the case page, approvals by role, chat, feedback, exports, the evidence report, offline assets."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from console_support import LSASS, SUDO, TENANT, ConsoleStore, console_store, csrf_of, workers
from fastapi.testclient import TestClient
from service_support import alert_variants
from soctriage.service.api.app import create_app
from soctriage.service.auth import revoke_key
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, Severity, Verdict, format_ts
from soctriage.service.ingest import normalize_bytes
from soctriage.service.store import Store
from soctriage.service.store.case_query import CaseFilter, page_cases
from soctriage.service.store.engine import create_store_engine, upgrade
from sqlalchemy import text


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[TestClient, ConsoleStore]]:
    data = console_store(tmp_path / "home")
    with (
        workers(data.settings),
        TestClient(create_app(data.settings, auth_enabled=True), follow_redirects=False) as client,
    ):
        yield client, data


def sign_in(client: TestClient, key: str) -> str:
    """Sign in with `key` (a fresh browser session); returns the CSRF token of the signed-in session."""
    client.cookies.clear()
    login = client.get("/login")
    answer = client.post("/login", data={"api_key": key, "next": "/", "csrf": csrf_of(login.text)})
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/").text)


def test_an_api_key_signs_in_once_and_becomes_an_httponly_strict_session(console) -> None:
    client, data = console
    first = client.get("/cases/whatever")
    assert first.status_code == 303 and first.headers["location"] == "/login?next=%2Fcases%2Fwhatever"
    page = client.get("/login")
    assert page.status_code == 200 and 'name="api_key"' in page.text
    no_token = client.post("/login", data={"api_key": data.keys["viewer"]})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    wrong = client.post("/login", data={"api_key": "stk_nope_nope", "csrf": csrf_of(page.text)})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    done = client.post(
        "/login", data={"api_key": data.keys["viewer"], "next": "//evil.example/", "csrf": csrf_of(page.text)}
    )
    assert done.status_code == 303 and done.headers["location"] == "/"  # never off-site after sign-in
    cookie = done.headers["set-cookie"]
    assert (
        "HttpOnly" in cookie
        and "SameSite=strict" in cookie.replace("Strict", "strict")
        and "Path=/" in cookie
    )
    # The secret follows the key id; it is URL-safe base64, so it may itself hold "_" (split once per part).
    assert data.keys["viewer"] not in cookie and data.keys["viewer"].split("_", 2)[2] not in cookie
    queue = client.get("/")
    assert queue.status_code == 200 and queue.text.count('data-testid="case-row"') == 3
    assert "viewer-user" in queue.text
    client.post("/logout", data={"csrf": csrf_of(queue.text)})
    assert client.get("/").status_code == 303


def test_every_post_needs_this_sessions_csrf_token_and_this_origin(console) -> None:
    client, data = console
    token = sign_in(client, data.keys["analyst"])
    case = data.cases[SUDO]
    body = {"disposition": "false_positive", "reason_code": "admin"}
    assert client.post(f"/cases/{case}/feedback", data=body).status_code == 403
    assert client.post(f"/cases/{case}/feedback", data={**body, "csrf": "forged"}).status_code == 403
    other = TestClient(client.app)
    other_token = csrf_of(other.get("/login").text)
    assert client.post(f"/cases/{case}/feedback", data={**body, "csrf": other_token}).status_code == 403
    evil = client.post(
        f"/cases/{case}/feedback", data={**body, "csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403 and "not this console" in evil.text
    with Store.open(data.settings) as store:
        assert not store.entries(case, kind="feedback")
    done = client.post(
        f"/cases/{case}/feedback", data=body, headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )
    assert done.status_code == 200 and 'data-testid="feedback-recorded"' in done.text
    assert done.headers["HX-Trigger"] == "ledger-changed"
    with Store.open(data.settings) as store:
        [entry] = store.entries(case, kind="feedback")
    assert (entry.actor, entry.payload["disposition"]) == ("human:analyst-user", "false_positive")


def test_feedback_can_make_a_suppression_rule_and_says_why_it_cannot(console) -> None:
    client, data = console
    token = sign_in(client, data.keys["analyst"])
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}
    made = client.post(
        f"/cases/{data.cases[LSASS]}/feedback",
        data={"disposition": "benign_true_positive", "rule": "on", "note": "red-team exercise"},
        headers=headers,
    )
    assert made.status_code == 200 and 'data-testid="feedback-rule"' in made.text and "activated" in made.text
    # The sudo alert names no program or file: a rule on its detection alone would silence all of it.
    refused = client.post(
        f"/cases/{data.cases[SUDO]}/feedback",
        data={"disposition": "false_positive", "rule": "on"},
        headers=headers,
    )
    assert refused.status_code == 422 and "names no process or file" in refused.text


def test_a_revoked_key_ends_its_sessions(console) -> None:
    client, data = console
    sign_in(client, data.keys["viewer"])
    key_id = data.keys["viewer"].split("_")[1]
    with Store.open(data.settings) as store:
        assert revoke_key(store, key_id)
    assert client.get("/").status_code == 303


def test_auth_off_on_loopback_needs_no_sign_in_but_still_checks_csrf(tmp_path: Path) -> None:
    data = console_store(tmp_path / "home")
    with TestClient(create_app(data.settings, auth_enabled=False), follow_redirects=False) as client:
        queue = client.get("/")
        assert queue.status_code == 200 and "anonymous" in queue.text
        assert client.get("/login").headers["location"] == "/"
        case = data.cases[SUDO]
        assert (
            client.post(f"/cases/{case}/feedback", data={"disposition": "false_positive"}).status_code == 403
        )
        ok = client.post(
            f"/cases/{case}/feedback", data={"disposition": "false_positive", "csrf": csrf_of(queue.text)}
        )
        assert ok.status_code == 200


def _open_cases(data: ConsoleStore, count: int) -> None:
    alerts = [a for raw in alert_variants(count) for a in normalize_bytes(raw, "v") if isinstance(a, Alert)]
    with Store.open(data.settings) as store:
        store.create_cases(alerts, TENANT)


def test_queue_filters_searches_counts_and_pages_with_a_cursor(console) -> None:
    client, data = console
    _open_cases(data, 23)
    sign_in(client, data.keys["viewer"])
    queue = client.get("/")
    assert queue.text.count('data-testid="case-row"') == 26
    assert re.search(r"new <b>23</b>", queue.text) and re.search(r"All <b>26</b>", queue.text)
    rows = client.get("/", params={"status": "awaiting_approval"}).text
    assert rows.count('data-testid="case-row"') == 1 and data.cases[LSASS] in rows
    by_host = client.get("/", params={"q": "web-prod"}).text  # the sudo sample and its 2 variants
    assert by_host.count('data-testid="case-row"') == 3 and data.cases[SUDO] in by_host
    by_user = client.get("/", params={"q": "SVC-BACKUP", "disposition": "true_positive"}).text
    assert by_user.count('data-testid="case-row"') == 1 and data.cases[LSASS] in by_user
    critical = client.get("/", params={"severity": "Critical"}).text
    shown = re.findall(r'<span class="sev sev-\w+">(\w+)</span>', critical)
    assert data.cases[LSASS] in critical and shown and set(shown) == {"Critical"}
    bad = client.get("/", params={"status": "bogus"})
    assert bad.status_code == 200 and "status &#39;bogus&#39; is not one of" in bad.text

    stamp = re.search(r"stamp=([^\"&]+)", queue.text).group(1)
    assert client.get(f"/queue/rows?stamp={stamp}").status_code == 204  # nothing changed
    with Store.open(data.settings) as store:
        store.set_status(data.cases[SUDO], "closed", actor="human:x", reason="test")
    refreshed = client.get(f"/queue/rows?stamp={stamp}")
    assert refreshed.status_code == 200 and "closed <b>2</b>" in refreshed.text

    headers = {"Authorization": f"Bearer {data.keys['viewer']}"}
    seen: list[str] = []
    url = "/v1/cases?limit=7"
    while url:
        page = client.get(url, headers=headers)
        assert page.status_code == 200
        seen += [c["id"] for c in page.json()]
        link = page.headers.get("link")
        url = link[1 : link.index(">")].removeprefix("http://testserver") if link else ""
        assert bool(link) == ("x-next-cursor" in page.headers)
    assert len(seen) == 26 == len(set(seen))
    assert seen == [c["id"] for c in client.get("/v1/cases?limit=100", headers=headers).json()]
    assert client.get("/v1/cases?q=web-prod&limit=100", headers=headers).json()[-1]["id"] == data.cases[SUDO]
    broken = client.get("/v1/cases?cursor=not-a-cursor", headers=headers)
    assert broken.status_code == 422 and broken.json()["detail"]["field"] == "cursor"
    paged = client.get("/", params={"cursor": "junk"})
    assert "not a cursor from this queue" in paged.text


def test_case_page_shows_alert_verdict_evidence_timeline_actions_and_integrity(console) -> None:
    client, data = console
    sign_in(client, data.keys["viewer"])
    case = data.cases[LSASS]
    page = client.get(f"/cases/{case}").text
    with Store.open(data.settings) as store:
        entries = store.entries(case)
        stored = store.get_case(case)
        raw = store.get_alert(stored.alert_ids[0], stored.tenant).raw
        verdict = store.get_case(case).verdict
    assert page.count('data-testid="timeline-entry"') == len(entries)
    assert all(f'id="seq-{e.seq}"' in page for e in entries)
    assert all(f'href="#seq-{seq}"' in page for seq in verdict.evidence)
    assert "Verified: " in page and entries[-1].hash in page
    assert page.count('data-testid="action-row"') == 5 and 'data-testid="approve-button"' not in page
    assert "waits for an approver (you are viewer)" in page and "DC01" in page
    raw_view = client.get(f"/cases/{case}/raw")
    assert raw_view.text == raw and raw_view.headers["content-type"].startswith("text/plain")
    assert "sandbox" in raw_view.headers["content-security-policy"]
    with Store.open(data.settings) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE ledger SET actor = 'forged' WHERE case_id = ? AND seq = 3", (case,))
    assert "NOT verified: first bad entry seq 3" in client.get(f"/cases/{case}").text
    assert client.get("/cases/case-000000000000").status_code == 404


def test_approval_by_role_shows_who_decided_and_the_resumed_outcome(console) -> None:
    client, data = console
    case = data.cases[LSASS]
    token = sign_in(client, data.keys["analyst"])
    refused = client.post(
        f"/cases/{case}/actions/A2/decision", data={"decision": "approve"}, headers={"X-CSRF-Token": token}
    )
    assert refused.status_code == 403 and "approver or admin needed" in refused.text
    token = sign_in(client, data.keys["approver"])
    page = client.get(f"/cases/{case}").text
    assert page.count('data-testid="approve-button"') == 4 and page.count('data-testid="reject-button"') == 4
    hx = {"X-CSRF-Token": token, "HX-Request": "true"}
    done = client.post(
        f"/cases/{case}/actions/A2/decision",
        data={"decision": "approve", "reason": "IR confirmed"},
        headers=hx,
    )
    assert done.status_code == 200
    outcome = re.search(r'data-testid="decision-outcome">([^<]+)<', done.text).group(1)
    assert "A2 isolate_host DC01: approved by approver-user" in outcome and "now executed" in outcome
    assert "IR confirmed" in done.text and 'id="case-status"' in done.text
    again = client.post(f"/cases/{case}/actions/A2/decision", data={"decision": "reject"}, headers=hx)
    assert again.status_code == 409 and "only a pending action can be decided" in again.text
    rejected = client.post(f"/cases/{case}/actions/A5/decision", data={"decision": "reject"}, headers=hx)
    assert "A5 disable_user svc-backup: rejected by approver-user" in rejected.text
    with Store.open(data.settings) as store:
        notes = [e for e in store.entries(case, kind="note") if e.payload.get("event") == "decision_refused"]
    # The approver's refusal (not pending) is the case's; the analyst, who may not decide, is only logged.
    assert {n.actor for n in notes} == {"human:approver-user"}


def test_chat_streams_the_answer_with_citations_linked_to_the_timeline(console) -> None:
    client, data = console
    token = sign_in(client, data.keys["analyst"])
    case = data.cases[LSASS]
    answer = client.post(
        f"/cases/{case}/chat",
        data={"question": "Which actions are still pending?"},
        headers={"X-CSRF-Token": token},
    )
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [block for block in answer.text.strip().split("\n\n")]
    assert sum(e.startswith("event: token") for e in events) > 3
    [final] = [json.loads(e.split("data: ", 1)[1]) for e in events if e.startswith("event: answer")]
    assert re.search(r'<a class="cite" href="#seq-\d+" data-seq="\d+">', final["html"])
    assert "A2" in final["html"] and "create_ticket" not in final["html"]  # only what is pending
    proposal = client.post(
        f"/cases/{case}/chat", data={"question": "Block 203.0.113.45"}, headers={"X-CSRF-Token": token}
    )
    [final] = [
        json.loads(e.split("data: ", 1)[1])
        for e in proposal.text.split("\n\n")
        if e.startswith("event: answer")
    ]
    assert final["proposals"] == ["C1"]
    page = client.get(f"/cases/{case}").text
    assert page.count('data-testid="chat-answer"') == 2 and 'data-action-id="C1"' in page
    sign_in(client, data.keys["viewer"])
    viewer = client.post(
        f"/cases/{case}/chat",
        data={"question": "hi"},
        headers={"X-CSRF-Token": csrf_of(client.get("/").text)},
    )
    assert "event: error" in viewer.text and "analyst or above needed" in viewer.text


def test_exports_and_the_evidence_report(console) -> None:
    client, data = console
    sign_in(client, data.keys["analyst"])
    case = data.cases[LSASS]
    pdf = client.get(f"/cases/{case}/transcript?format=pdf")
    assert pdf.content.startswith(b"%PDF") and "attachment" in pdf.headers["content-disposition"]
    jsonl = client.get(f"/cases/{case}/transcript?format=jsonl").text.splitlines()
    assert json.loads(jsonl[0])["kind"] == "alert_received"
    assert client.get(f"/cases/{case}/transcript?format=doc").status_code == 422
    report = client.get("/reports/evidence", params={"since": "2020-01-01"})
    assert 'data-testid="report-frame"' in report.text and "format=pdf&amp;since=2020-01-01" in report.text
    html = client.get("/reports/evidence/file", params={"format": "html", "since": "2020-01-01"})
    assert (
        "SOC evidence report" in html.text
        and "frame-ancestors 'self'" in html.headers["content-security-policy"]
    )
    assert client.get("/reports/evidence/file?format=pdf").content.startswith(b"%PDF")
    bad = client.get("/reports/evidence", params={"since": "yesterday"})
    assert "since:" in bad.text and 'data-testid="report-frame"' not in bad.text
    sign_in(client, data.keys["viewer"])
    assert client.get("/reports/evidence/file?format=pdf").status_code == 403


def test_pages_load_nothing_from_outside_and_docs_are_served_locally(console) -> None:
    client, data = console
    sign_in(client, data.keys["admin"])
    pages = [client.get(p) for p in ("/", f"/cases/{data.cases[LSASS]}", "/reports/evidence", "/login")]
    for page in pages:
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
        assert not [a for a in assets if re.match(r"(https?:)?//", a)], assets
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', pages[0].text):
        assert client.get(asset).status_code == 200
    docs = client.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"):
        assert client.get(f"/static/vendor/swagger-ui/{name}").status_code == 200
    htmx = client.get("/static/vendor/htmx/htmx.min.js")
    assert htmx.status_code == 200 and 'version:"2.0.11"' in htmx.text.replace(" ", "")
    assert "Zero-Clause BSD" in client.get("/static/vendor/htmx/LICENSE").text
    assert client.get("/redoc").status_code in (303, 404)  # ReDoc would load from a CDN: not served


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_existing_cases_get_their_queue_columns_when_the_store_is_upgraded(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    settings = Settings(home=tmp_path / "home", database_url=url)
    engine = create_store_engine(settings.sqlalchemy_url)
    upgrade(engine, "0003")  # a store from before the console
    alert = {
        "title": "Old alert",
        "device": {"hostname": "OLD-HOST"},
        "user": {"name": "old.user"},
        "severity": {"id": 4, "label": "High"},
    }
    verdict = Verdict(
        disposition="false_positive", severity=Severity.of(2), confidence=0.9, summary="s", rationale="r"
    ).model_dump(mode="json")
    at = datetime(2025, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        for n, shown in enumerate((None, verdict)):
            conn.execute(
                text(
                    "INSERT INTO cases (id, tenant, status, verdict, status_times, created_at, updated_at, head_seq)"
                    " VALUES (:id, :tenant, 'new', :verdict, '{}', :at, :at, 1)"
                ),
                {
                    "id": f"case-old{n}",
                    "tenant": TENANT,
                    "verdict": json.dumps(shown) if shown else None,
                    "at": format_ts(at) if backend == "sqlite" else at,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO alerts (id, case_id, tenant, received_at, vendor, product, format, raw, raw_sha256,"
                    " normalized) VALUES (:id, :case, :tenant, :at, 'v', 'p', 'ocsf', '{}', 'x', :normalized)"
                ),
                {
                    "id": f"old-{n}",
                    "case": f"case-old{n}",
                    "tenant": TENANT,
                    "normalized": json.dumps(alert),
                    "at": format_ts(at) if backend == "sqlite" else at,
                },
            )
    engine.dispose()
    with Store.open(settings) as store:
        page = page_cases(store, TENANT, CaseFilter(text="old-host"))
        shown = {row.case.id: (row.title, row.hostname, row.user, row.severity) for row in page.rows}
        assert shown == {
            "case-old0": ("Old alert", "OLD-HOST", "old.user", "High"),
            "case-old1": ("Old alert", "OLD-HOST", "old.user", "Low"),
        }
        assert [
            r.case.id for r in page_cases(store, TENANT, CaseFilter(disposition="false_positive")).rows
        ] == ["case-old1"]


def test_an_expired_approval_request_says_so(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    default = (Path(__file__).resolve().parents[1] / "tools" / "data" / "policy.yaml").read_text()
    policy.write_text(re.sub(r"(?m)^approval_ttl_s: .*$", "approval_ttl_s: 1", default))
    data = console_store(tmp_path / "home", policy_path=policy)
    time.sleep(1.2)
    with (
        workers(data.settings, 1),
        TestClient(create_app(data.settings, auth_enabled=True), follow_redirects=False) as client,
    ):
        token = sign_in(client, data.keys["approver"])
        case = data.cases[LSASS]
        late = client.post(
            f"/cases/{case}/actions/A2/decision",
            data={"decision": "approve"},
            headers={"X-CSRF-Token": token, "HX-Request": "true"},
        )
        assert late.status_code == 409 and "expired" in late.text
        row = re.search(r'data-action-id="A2".*?</tr>', late.text, re.S).group(0)
        assert 'data-testid="approve-button"' not in row
