"""Hostile input through every public door (HTTP and CLI): a 4xx or exit 2 with a message naming the field, the
raw record kept in quarantine, and every valid record beside it still accepted. Never a 5xx or a traceback."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from service_support import SAMPLES, SOCTRIAGE, alert_variants, service_env
from soctriage.service.api.app import create_app
from soctriage.service.auth import create_key
from soctriage.service.cli import app
from soctriage.service.config import Settings
from soctriage.service.store import Store
from sqlalchemy import Engine, event
from typer.testing import CliRunner

BENIGN = "crowdstrike-test-detection.json"
SURROGATE = '"\\ud800"'  # a JSON escape that decodes to a lone surrogate
# Each goes into an otherwise valid alert, as an extra member the normalizer keeps among the unmapped fields.
HOSTILE_VALUES = {
    "deep": '{"a": ' * 150 + "1" + "}" * 150,
    "deeper than the parser": '{"a": ' * 5000 + "1" + "}" * 5000,
    "deep array": "[" * 3000 + "]" * 3000,
    "long integer": "9" * 5000,
    "NaN": "NaN",
    "out of range": "1e999",
}
# Characters no store can keep inside strings: an attacker can put them into what the EDR reports (an unpaired
# UTF-16 surrogate in a Windows file name or command line), so they are replaced, never a reason to refuse.
UNSTORABLE_VALUES = {
    "lone surrogate": SURROGATE,
    "lone surrogate key": "{" + SURROGATE + ": 1}",
    "NUL": '"a\\u0000b"',
    "NUL key": '{"a\\u0000": 1}',
}


def hostile(name: str) -> bytes:
    """A valid alert of its own (a vendor alert id per name) carrying the hostile value as `extra`."""
    values = {**HOSTILE_VALUES, **UNSTORABLE_VALUES}
    number = sorted(values).index(name) + 1
    record = one_line(list(alert_variants(number + 1, [BENIGN]))[number])
    return b'{"extra": ' + values[name].encode() + b", " + record[1:]


def one_line(alert: bytes) -> bytes:
    return json.dumps(json.loads(alert)).encode()


def long_vendor_id_alert() -> bytes:
    record = json.loads(next(alert_variants(1, [BENIGN])))
    record["event"]["CompositeId"] = "x" * 600
    return json.dumps(record).encode()


class Api:
    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client, self.keys = client, keys

    def post(self, key: str, path: str, body: bytes | str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[key]}", "Content-Type": "application/json"}
        content = body.encode() if isinstance(body, str) else body
        return self.client.post(path, content=content, headers=headers, **kwargs)

    def get(self, key: str, path: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.keys[key]}"})


def open_api(settings: Settings) -> Iterator[Api]:
    keys = {}
    with Store.open(settings) as store:
        for tenant in ("acme", "globex"):
            for role in ("viewer", "analyst", "approver", "admin"):
                keys[f"{tenant}-{role}"] = create_key(store, tenant, role, f"{tenant}-{role}")[1]
    with TestClient(create_app(settings, auth_enabled=True), raise_server_exceptions=False) as client:
        yield Api(client, keys)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def backend_settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if backend == "postgres":
        return Settings(home=tmp_path / "home", database_url=request.getfixturevalue("pg_url"))
    return Settings(home=tmp_path / "home")


@pytest.fixture(params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    # No worker: intake only queues the cases, and nothing here needs them triaged.
    yield from open_api(backend_settings(request.param, request, tmp_path))


def test_a_case_id_with_a_nul_is_a_404(api: Api) -> None:
    for path in ("/v1/cases/case-%00x", "/v1/cases/case-%00x/ledger"):
        assert api.get("acme-viewer", path).status_code == 404
    assert (
        api.post(
            "acme-analyst", "/v1/cases/case-%00x/feedback", '{"disposition": "benign_true_positive"}'
        ).status_code
        == 404
    )


def quarantined(settings: Settings) -> list[bytes]:
    with Store.open(settings) as store:
        return [q.rejection.raw for q in store.list_quarantine(limit=100_000)]


# --- intake over HTTP -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOSTILE_VALUES))
def test_hostile_records_are_rejected_and_kept_and_the_valid_alert_beside_them_is_accepted(
    api: Api, name: str
) -> None:
    record = hostile(name)
    good = one_line(next(alert_variants(1, [BENIGN])))
    response = api.post("acme-analyst", "/v1/alerts", record + b"\n" + good + b"\n")
    assert response.status_code == 202, response.text
    report = response.json()
    assert len(report["accepted"]) == 1
    [rejected] = report["rejected"]
    assert rejected["line"] == 1 and rejected["quarantine_id"]
    assert quarantined(api.client.app.state.settings) == [record]


def test_the_rejection_names_the_field_and_the_limit(api: Api) -> None:
    body = b"\n".join(hostile(name) for name in ("long integer", "deep"))
    rejected = api.post("acme-analyst", "/v1/alerts", body).json()["rejected"]
    assert "4300" in rejected[0]["reason"]
    assert "deeper than 100 levels" in rejected[1]["reason"] and rejected[1]["field"].startswith("extra")


@pytest.mark.parametrize("name", sorted(UNSTORABLE_VALUES))
def test_a_record_with_unstorable_characters_is_accepted_and_kept_whole(api: Api, name: str) -> None:
    record = hostile(name)
    response = api.post("acme-analyst", "/v1/alerts", record)
    assert response.status_code == 202 and response.json()["rejected"] == [], response.text
    [accepted] = response.json()["accepted"]
    assert quarantined(api.client.app.state.settings) == []
    with Store.open(api.client.app.state.settings) as store:
        alert = store.get_alert(accepted["alert_id"], "acme")
    assert alert is not None and alert.raw.encode() == record  # the raw record keeps the escape


def test_an_alert_made_unstorable_on_purpose_is_triaged_and_never_auto_closed(tmp_path: Path) -> None:
    """The vendor's own test detection auto-closes as benign; with an unpaired surrogate in the record, as an
    attacker would plant it, it is triaged and goes to a human."""
    record = json.loads(next(alert_variants(1, [BENIGN])))
    record["extra"] = "note \ud800"
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(json.dumps(record) + "\n")  # json escapes the lone surrogate as \ud800
    assert "\\ud800" in alerts.read_text()
    done = CliRunner().invoke(
        app, ["triage", "--json", str(alerts)], env={"SOCTRIAGE_HOME": str(tmp_path / "h")}
    )
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] != "closed" and result["disposition"] not in (
        "false_positive",
        "benign_true_positive",
    )


def test_a_vendor_alert_id_over_512_characters_is_rejected(api: Api) -> None:
    response = api.post("acme-analyst", "/v1/alerts", long_vendor_id_alert())
    assert response.status_code == 422
    assert "vendor alert id is 600 characters, limit is 512" in response.json()["rejected"][0]["reason"]


def test_a_vendor_or_product_name_wider_than_the_store_is_rejected(api: Api) -> None:
    record = json.loads(SAMPLES.joinpath("ocsf-scheduled-task-persistence.json").read_bytes())
    record["metadata"]["product"]["vendor_name"] = "v" * 300
    response = api.post("acme-analyst", "/v1/alerts", json.dumps(record))
    assert response.status_code == 422
    assert "the vendor name is 300 characters, limit is 128" in response.json()["rejected"][0]["reason"]


def test_many_bad_records_are_quarantined_in_one_transaction(api: Api) -> None:
    commits = []

    def count(_: object) -> None:
        commits.append(1)

    body = b"".join(b'{"bad": %d\n' % n for n in range(20_000))
    event.listen(Engine, "commit", count)
    try:
        response = api.post("acme-analyst", "/v1/alerts", body)
    finally:
        event.remove(Engine, "commit", count)
    assert response.status_code == 422
    assert len(response.json()["rejected"]) == 20_000
    assert len(commits) <= 2  # the quarantine, and the API key's lookup at most
    assert len(quarantined(api.client.app.state.settings)) == 20_000


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/cases/{case}/chat", '{"question": %s}', "question"),
        ("/v1/cases/{case}/feedback", '{"disposition": "false_positive", "note": %s}', "note"),
        ("/v1/cases/{case}/feedback", '{"disposition": "false_positive", "reason_code": %s}', "reason_code"),
        ("/v1/cases/{case}/actions/A1/decision", '{"approve": true, "reason": %s}', "reason"),
        (
            "/v1/chat/completions",
            '{"model": "case:{case}", "messages": [{"role": "user", "content": %s}]}',
            "",
        ),
        ("/v1/chat/completions", '{"model": %s, "messages": [{"role": "user", "content": "hi"}]}', "model"),
    ],
)
def test_a_lone_surrogate_in_any_request_body_is_a_422_naming_the_field(
    api: Api, path: str, body: str, field: str
) -> None:
    [accepted] = api.post("acme-analyst", "/v1/alerts", next(alert_variants(1, [BENIGN]))).json()["accepted"]
    case = accepted["case_id"]
    response = api.post("acme-admin", path.replace("{case}", case), body.replace("{case}", case) % SURROGATE)
    assert response.status_code == 422, response.text
    assert "lone surrogate" in response.text and f"(field {field or 'messages[0].content'})" in response.text
    assert len(api.get("acme-viewer", f"/v1/cases/{case}/ledger").json()) == 1  # nothing was written


async def test_a_chunked_body_over_the_limit_is_refused_once_the_limit_is_passed(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", max_request_bytes=1024 * 1024)
    with Store.open(settings) as store:
        token = create_key(store, "acme", "analyst")[1]
    sent = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):  # 100 MiB if it were all read
            sent.append(1)
            yield b" " * (1024 * 1024)

    # httpx's ASGI transport hands the body over chunk by chunk as the app asks for it, as a server does.
    service = create_app(settings)
    async with service.router.lifespan_context(service):
        transport = httpx2.ASGITransport(app=service)
        async with httpx2.AsyncClient(transport=transport, base_url="http://soctriage") as client:
            headers = {"Authorization": f"Bearer {token}"}
            response = await client.post("/v1/alerts", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert len(sent) < 5


# --- intake on the command line -------------------------------------------------------------------------------


def run(home: Path, *args: str, **env: str) -> Result:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOCTRIAGE_HOME", str(home))
        patch.delenv("SOCTRIAGE_DATABASE_URL", raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        return CliRunner().invoke(app, list(args))


def test_the_cli_rejects_hostile_records_names_their_line_and_keeps_the_rest(tmp_path: Path) -> None:
    good = one_line(next(alert_variants(1, [BENIGN])))
    records = [hostile(name) for name in sorted(HOSTILE_VALUES)]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join([*records, good, long_vendor_id_alert()]) + b"\n")
    result = run(tmp_path / "home", "normalize", str(path))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.stdout.splitlines()) == 1  # the valid alert
    assert f"{len(records) + 1} record(s) rejected" in result.stderr
    assert f"{path}:{len(records) + 2}: the vendor alert id is 600 characters" in result.stderr
    assert len(quarantined(Settings(home=tmp_path / "home"))) == len(records) + 1


@pytest.mark.parametrize("command", ["normalize", "triage"])
def test_an_empty_input_file_is_bad_input_not_a_silent_pass(tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n  \n")
    result = run(tmp_path / "home", command, str(empty))
    assert_one_line_exit_2(result, f"{empty}: no alert records in it")


@pytest.mark.parametrize(
    "args",
    [
        ["approve", "case-x", "A2", "--by", "alice", "--reason", "\udcff"],
        ["approve", "case-x", "A2", "--by", "\udcffalice"],
        ["chat", "case-x", "why \udcff?"],
        ["keys", "create", "--tenant", "\udcff", "--role", "viewer"],
    ],
)
def test_an_argument_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    # How Python hands over argv bytes that are not UTF-8 (e.g. `--reason $'\xff'`): a lone surrogate.
    result = run(tmp_path / "home", *args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    [line] = result.stderr.strip().splitlines()
    assert line.endswith("): not UTF-8 text") and "\\udcff" in line


# --- files and configuration on the command line --------------------------------------------------------------


def assert_one_line_exit_2(result: Result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    problem = [line for line in result.stderr.splitlines() if not line.startswith("store: ")]
    assert len(problem) == 1, result.stderr
    assert all(text in problem[0] for text in expected), problem[0]


@pytest.fixture(scope="module")
def triaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("triaged") / "home"
    sample = Path(str(SAMPLES.joinpath(BENIGN)))
    result = run(home, "triage", "--json", str(sample))
    assert result.exit_code == 0, result.output
    return home, json.loads(result.stdout)["case_id"]


@pytest.mark.parametrize("where", ["missing folder", "directory", "/dev/full"])
@pytest.mark.parametrize(
    "command",
    [
        ["ledger", "export", "{case}", "--format", "md"],
        ["ledger", "export", "{case}", "--format", "pdf"],
        ["report", "evidence", "--format", "md"],
    ],
)
def test_an_out_file_that_cannot_be_written_is_one_line_and_exit_2(
    triaged: tuple[Path, str], tmp_path: Path, where: str, command: list[str]
) -> None:
    home, case = triaged
    out = {
        "missing folder": tmp_path / "no" / "such" / "x.out",
        "directory": tmp_path,
        "/dev/full": Path("/dev/full"),
    }
    target = out[where]
    result = run(home, *(part.replace("{case}", case) for part in command), "--out", str(target))
    assert_one_line_exit_2(result, f"--out {target}: cannot write")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SOCTRIAGE_MODEL", "ftp:gpt", "SOCTRIAGE_MODEL='ftp:gpt'"),
        ("SOCTRIAGE_MODEL", "replay:/no/such/folder", "the replay folder does not exist"),
        ("SOCTRIAGE_POLICY_PATH", "/no/such/policy.yaml", "cannot read policy"),
        ("SOCTRIAGE_POLICY_PATH", "{not-yaml", "policy"),
        ("SOCTRIAGE_INTEL_PATHS", "/not/json", "SOCTRIAGE_INTEL_PATHS: cannot parse the value"),
        ("SOCTRIAGE_INTEL_PATHS", '["/no/such/intel.jsonl"]', "cannot read intel file"),
        ("SOCTRIAGE_WORKER_CONCURRENCY", "many", "SOCTRIAGE_WORKER_CONCURRENCY"),
    ],
)
def test_an_unusable_setting_is_one_line_and_exit_2(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    if value == "{not-yaml":
        policy = tmp_path / "policy.yaml"
        policy.write_text("rules: [unclosed\n  - {")
        value = str(policy)
    sample = Path(str(SAMPLES.joinpath(BENIGN)))
    result = run(tmp_path / "home", "triage", str(sample), **{name: value})
    assert_one_line_exit_2(result, expected)


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["worker"]])
def test_the_service_commands_refuse_an_unusable_setting_before_starting(
    tmp_path: Path, command: list[str]
) -> None:
    env = service_env(tmp_path / "home", SOCTRIAGE_POLICY_PATH=str(tmp_path / "missing.yaml"))
    result = subprocess.run([*SOCTRIAGE, *command], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("missing.yaml: cannot read policy: No such file or directory")
    )
    assert "Traceback" not in result.stderr


# --- tenants --------------------------------------------------------------------------------------------------


def test_metrics_are_for_an_operator_key_only(api: Api) -> None:
    with Store.open(api.client.app.state.settings) as store:
        api.keys["operator"] = create_key(store, "ops", "operator", "prometheus")[1]
    for tenant_key in ("acme-viewer", "acme-admin", "globex-admin"):
        assert api.get(tenant_key, "/metrics").status_code == 403
    assert api.get("operator", "/metrics").status_code == 200
    assert api.get("operator", "/v1/cases").status_code == 403  # an operator reads no tenant's cases


def test_a_refused_decision_of_a_viewer_is_logged_not_written_into_the_case(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    [accepted] = api.post("acme-analyst", "/v1/alerts", next(alert_variants(1, [BENIGN]))).json()["accepted"]
    case = accepted["case_id"]
    with caplog.at_level("WARNING", logger="soctriage.api"):
        refused = api.post("acme-viewer", f"/v1/cases/{case}/actions/A1/decision", '{"approve": true}')
    assert refused.status_code == 403
    assert len(api.get("acme-viewer", f"/v1/cases/{case}/ledger").json()) == 1
    [logged] = [r for r in caplog.records if getattr(r, "event", None) == "decision_refused"]
    assert (logged.case_id, logged.key, logged.role) == (case, "acme-viewer", "viewer")


def test_cases_list_shows_and_filters_the_tenant(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    alert = next(alert_variants(1, [BENIGN]))
    for api in open_api(settings):
        for key in ("acme-analyst", "globex-analyst"):
            assert api.post(key, "/v1/alerts", alert).status_code == 202
    listed = run(tmp_path / "home", "cases", "list")
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:2] == ["case", "tenant"]
    assert sorted(row.split()[1] for row in rows) == ["acme", "globex"]
    only = run(tmp_path / "home", "cases", "list", "--tenant", "globex", "--json")
    assert [case["tenant"] for case in json.loads(only.stdout)] == ["globex"]
    assert run(tmp_path / "home", "cases", "list", "--limit", "-1").exit_code == 2


@pytest.mark.parametrize(
    "args", [["approve", "case-x", "A2", "--by", "n" * 200], ["chat", "case-x", "hi", "--by", "n" * 200]]
)
def test_a_person_named_wider_than_the_ledger_actor_is_refused(tmp_path: Path, args: list[str]) -> None:
    assert_one_line_exit_2(run(tmp_path / "home", *args), "--by: 200 characters, limit is 122")


@pytest.mark.parametrize("backend", BACKENDS)
def test_keys_create_refuses_a_tenant_the_store_cannot_hold(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    database = backend_settings(backend, request, tmp_path).database_url
    env = {"SOCTRIAGE_DATABASE_URL": database} if database else {}
    result = run(tmp_path / "home", "keys", "create", "--tenant", "t" * 300, "--role", "viewer", **env)
    assert_one_line_exit_2(result, "tenant: 300 characters, limit is 128")
    named = run(
        tmp_path / "home", "keys", "create", "--tenant", "t", "--role", "viewer", "--name", "n" * 200, **env
    )
    assert_one_line_exit_2(named, "name: 200 characters, limit is 122")


# --- the quarantine's door ------------------------------------------------------------------------------------


def test_a_tenants_admin_lists_shows_and_resubmits_its_quarantined_records(api: Api) -> None:
    alert = next(alert_variants(1, [BENIGN]))
    [rejected] = api.post("acme-analyst", "/v1/alerts", alert, params={"format": "defender"}).json()[
        "rejected"
    ]
    record = rejected["quarantine_id"]
    assert api.post("globex-analyst", "/v1/alerts", b"{broken").status_code == 422
    listed = api.get("acme-admin", "/v1/quarantine").json()
    assert [(r["id"], r["format"], r["source"]) for r in listed] == [(record, "defender", "POST /v1/alerts")]
    shown = api.get("acme-admin", f"/v1/quarantine/{record}").json()
    assert (
        base64.b64decode(shown["raw_base64"]) == alert.strip() and "looks like crowdstrike" in shown["reason"]
    )
    for key in ("acme-analyst", "globex-admin"):  # an analyst may not; another tenant's is not there
        assert api.get(key, f"/v1/quarantine/{record}").status_code in (403, 404)
        assert api.post(key, f"/v1/quarantine/{record}/retry", b"").status_code in (403, 404)
    again = api.post("acme-admin", f"/v1/quarantine/{record}/retry", b"", params={"format": "defender"})
    assert again.status_code == 422 and again.json()["rejected"][0]["quarantine_id"] == record
    retried = api.post("acme-admin", f"/v1/quarantine/{record}/retry", b"")
    assert retried.status_code == 200, retried.text
    [accepted] = retried.json()["accepted"]
    assert api.get("acme-viewer", f"/v1/cases/{accepted['case_id']}").status_code == 200
    assert api.get("acme-admin", "/v1/quarantine").json() == []  # its bytes now live with its alert
    assert api.get("acme-admin", f"/v1/quarantine/{record}").status_code == 404


def test_the_quarantine_commands_list_show_and_retry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    good = one_line(next(alert_variants(1, [BENIGN])))
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"{broken\n" + good + b"\n")
    assert run(home, "normalize", "--format", "defender", str(path)).exit_code == 2
    listed = json.loads(run(home, "quarantine", "list", "--json").stdout)
    assert [(r["line"], r["tenant"]) for r in listed] == [(2, "default"), (1, "default")]
    table = run(home, "quarantine", "list", "--tenant", "default").stdout.splitlines()
    assert table[0].split()[:4] == ["id", "received", "(UTC)", "tenant"] and len(table) == 3
    assert run(home, "quarantine", "list", "--tenant", "other", "--json").stdout.strip() == "[]"
    newest, broken = listed[0]["id"], listed[1]["id"]
    assert run(home, "quarantine", "show", str(newest), "--raw").stdout_bytes == good
    assert "looks like crowdstrike" in run(home, "quarantine", "show", str(newest)).stdout
    still = run(home, "quarantine", "retry", str(broken))
    assert still.exit_code == 2 and "stays in quarantine" in still.stderr
    retried = run(home, "quarantine", "retry", str(newest))
    assert retried.exit_code == 0, retried.output
    assert "queued for triage in case-" in retried.stdout
    assert [r["id"] for r in json.loads(run(home, "quarantine", "list", "--json").stdout)] == [broken]
    assert run(home, "quarantine", "show", "999").exit_code == 2
