"""Connectors against local fake vendor APIs (ASGI apps behind an injected httpx transport; no network), and
idempotency of response actions."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
from fastapi import FastAPI, Header, HTTPException, Request, Response
from soctriage.service.config import Settings
from soctriage.tools import (
    ConnectorError,
    Connectors,
    CrowdStrikeConnector,
    DefenderConnector,
    Guard,
    SimulatorConnector,
    ToolCall,
    load_policy,
    run_tool,
)
from soctriage.tools.actions import (
    HostInput,
    IndicatorInput,
    KillProcessInput,
    QuarantineFileInput,
    UserInput,
)
from tools_support import DROPPER_SHA256, make_alert, make_ctx

VT_MALICIOUS = "f1525be75f488971201316b9a64e6f880f4ffe7dd3bad347d027d8abf167992e"
SHA1 = "a" * 40


def fake_vendor_apis() -> FastAPI:
    """VirusTotal v3, AbuseIPDB v2, CrowdStrike Falcon and Defender for Endpoint, as far as we use them."""
    app = FastAPI()
    app.state.calls = []
    app.state.hits = {}
    app.state.cs_iocs = {}
    app.state.md_iocs = {}

    @app.middleware("http")
    async def record(request: Request, call_next):
        body = (await request.body()).decode()
        app.state.calls.append((request.method, request.url.path, dict(request.query_params), body))
        return await call_next(request)

    def bump(name: str) -> int:
        app.state.hits[name] = app.state.hits.get(name, 0) + 1
        return app.state.hits[name]

    # --- VirusTotal ---
    def vt_auth(key: str | None) -> None:
        if key != "vt-key":
            raise HTTPException(401, "bad key")

    @app.get("/api/v3/files/{digest}")
    def vt_file(digest: str, x_apikey: str | None = Header(default=None)) -> dict[str, Any]:
        vt_auth(x_apikey)
        if digest == "0" * 64:
            raise HTTPException(500, "always broken")
        if digest == "1" * 64 and bump("flaky") == 1:
            raise HTTPException(429, "slow down")
        if digest not in (VT_MALICIOUS, "1" * 64):
            raise HTTPException(404, "NotFoundError")
        stats = {"malicious": 41, "suspicious": 1, "undetected": 20, "harmless": 0}
        return {
            "data": {
                "id": digest,
                "type": "file",
                "attributes": {"last_analysis_stats": stats, "tags": ["peexe"]},
            }
        }

    @app.get("/api/v3/ip_addresses/{ip}")
    def vt_ip(ip: str, x_apikey: str | None = Header(default=None)) -> dict[str, Any]:
        vt_auth(x_apikey)
        stats = {"malicious": 0, "suspicious": 0, "undetected": 30, "harmless": 60}
        return {"data": {"attributes": {"last_analysis_stats": stats}}}

    # --- AbuseIPDB ---
    @app.get("/api/v2/check")
    def abuse_check(ipAddress: str, key: str | None = Header(default=None)) -> dict[str, Any]:
        if key != "abuse-key":
            raise HTTPException(401)
        score = 100 if ipAddress == "192.0.2.77" else 0
        return {"data": {"ipAddress": ipAddress, "abuseConfidenceScore": score, "totalReports": 12}}

    # --- CrowdStrike ---
    def cs_auth(authorization: str | None) -> None:
        if authorization != "Bearer cs-token":
            raise HTTPException(401)

    async def form(request: Request) -> dict[str, str]:
        # Parsed by hand: FastAPI's Form needs python-multipart, which the project does not depend on.
        return {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}

    @app.post("/oauth2/token")
    async def cs_token(request: Request) -> dict[str, Any]:
        data = await form(request)
        if (data.get("client_id"), data.get("client_secret")) != ("cs-id", "cs-secret"):
            raise HTTPException(401)
        bump("cs-token")
        return {"access_token": "cs-token", "expires_in": 1799, "token_type": "bearer"}

    @app.get("/devices/queries/devices/v1")
    def cs_devices(filter: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        cs_auth(authorization)
        return {"resources": ["aid-fin"] if filter == "hostname:'FIN-WS-042'" else []}

    @app.post("/devices/entities/devices-actions/v2")
    async def cs_action(
        action_name: str, request: Request, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        cs_auth(authorization)
        body = await request.json()
        return {"resources": [{"id": body["ids"][0], "path": action_name}], "errors": []}

    @app.post("/real-time-response/entities/sessions/v1")
    def cs_session(authorization: str | None = Header(default=None)) -> dict[str, Any]:
        cs_auth(authorization)
        return {"resources": [{"session_id": "sess-1"}]}

    @app.post("/real-time-response/entities/active-responder-command/v1")
    def cs_command(authorization: str | None = Header(default=None)) -> dict[str, Any]:
        cs_auth(authorization)
        return {"resources": [{"cloud_request_id": "req-1", "session_id": "sess-1"}]}

    @app.post("/iocs/entities/indicators/v1")
    async def cs_ioc_create(
        request: Request, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        cs_auth(authorization)
        ioc = (await request.json())["indicators"][0]
        ioc_id = f"ioc-{len(app.state.cs_iocs) + 1}"
        app.state.cs_iocs[ioc_id] = ioc
        return {"resources": [{"id": ioc_id, **ioc}]}

    @app.get("/iocs/queries/indicators/v1")
    def cs_ioc_query(filter: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        cs_auth(authorization)
        ids = [i for i, ioc in app.state.cs_iocs.items() if f"value:'{ioc['value']}'" in filter]
        return {"resources": ids}

    @app.delete("/iocs/entities/indicators/v1")
    def cs_ioc_delete(ids: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        cs_auth(authorization)
        app.state.cs_iocs.pop(ids, None)
        return {"resources": [ids]}

    # --- Defender for Endpoint ---
    def md_auth(authorization: str | None) -> None:
        if authorization != "Bearer md-token":
            raise HTTPException(401)

    @app.post("/defender/token")
    async def md_token(request: Request) -> dict[str, Any]:
        data = await form(request)
        if (data.get("grant_type"), data.get("client_id"), data.get("client_secret")) != (
            "client_credentials",
            "md-id",
            "md-secret",
        ):
            raise HTTPException(401)
        assert data["scope"].endswith("/.default")
        return {"access_token": "md-token", "expires_in": 3599}

    @app.get("/api/machines")
    def md_machines(request: Request, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        md_auth(authorization)
        flt = request.query_params["$filter"]
        found = flt == "startswith(computerDnsName,'fin-ws-042.')"
        return {"value": [{"id": "m-fin", "computerDnsName": "fin-ws-042.corp.example"}] if found else []}

    @app.post("/api/machines/{machine}/{verb}")
    async def md_machine_action(
        machine: str, verb: str, request: Request, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        md_auth(authorization)
        body = await request.json()
        assert body["Comment"].startswith("soctriage ")
        return {"id": f"ma-{verb}", "type": verb, "machineId": machine, "status": "Pending"}

    @app.post("/api/indicators")
    async def md_ioc_create(
        request: Request, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        md_auth(authorization)
        ioc = await request.json()
        ioc_id = len(app.state.md_iocs) + 17
        app.state.md_iocs[ioc_id] = ioc
        return {"id": ioc_id, **ioc}

    @app.get("/api/indicators")
    def md_ioc_list(request: Request, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        md_auth(authorization)
        flt = request.query_params["$filter"]
        return {
            "value": [
                {"id": i} for i, ioc in app.state.md_iocs.items() if f"'{ioc['indicatorValue']}'" in flt
            ]
        }

    @app.delete("/api/indicators/{ioc_id}")
    def md_ioc_delete(ioc_id: int, authorization: str | None = Header(default=None)) -> Response:
        md_auth(authorization)
        app.state.md_iocs.pop(ioc_id, None)
        return Response(status_code=204)

    return app


@pytest.fixture
def fake() -> FastAPI:
    return fake_vendor_apis()


def _transport(app: FastAPI) -> httpx2.ASGITransport:
    return httpx2.ASGITransport(app=app)


def _http(app: FastAPI) -> dict[str, Any]:
    return {"transport": _transport(app), "retry_wait_s": 0.0, "retries": 3}


def _calls(app: FastAPI, prefix: str) -> list[tuple[str, str, dict[str, str], str]]:
    return [c for c in app.state.calls if c[1].startswith(prefix)]


async def test_virustotal_and_abuseipdb_through_the_lookup_tool(fake: FastAPI) -> None:
    settings = Settings(
        virustotal_api_key="vt-key",
        virustotal_base_url="http://vt.test/api/v3",
        abuseipdb_api_key="abuse-key",
        abuseipdb_base_url="http://abuse.test/api/v2",
    )
    conns = Connectors.from_settings(settings, transport=_transport(fake), retry_wait_s=0.0)
    ctx = make_ctx(connectors=conns, settings=settings)

    out = await run_tool(ctx, "threat_intel_lookup", {"indicator": VT_MALICIOUS})
    assert out.output["verdict"] == "malicious"
    vt = next(h for h in out.output["hits"] if h["source"] == "virustotal")
    assert vt["score"] == 68 and vt["tags"] == ["peexe"]

    out = await run_tool(ctx, "threat_intel_lookup", {"indicator": "192.0.2.77"})
    assert [h["source"] for h in out.output["hits"]] == ["virustotal", "abuseipdb"]
    assert out.output["verdict"] == "malicious" and out.output["score"] == 100

    out = await run_tool(ctx, "threat_intel_lookup", {"indicator": "c" * 64})  # VT 404
    assert out.output["verdict"] == "unknown" and out.output["hits"][0]["detail"] == "not found"

    out = await run_tool(ctx, "threat_intel_lookup", {"indicator": "1" * 64})  # 429 once, then fine
    assert out.status == "ok" and out.output["verdict"] == "malicious"
    assert len(_calls(fake, "/api/v3/files/" + "1" * 64)) == 2

    out = await run_tool(ctx, "threat_intel_lookup", {"indicator": "0" * 64})  # 500 every time
    assert (out.status, out.error_kind) == ("error", "connector")
    assert "HTTP 500 after 3 attempts" in out.error
    assert len(_calls(fake, "/api/v3/files/" + "0" * 64)) == 3
    # Keys never show up in outcomes.
    assert "vt-key" not in out.model_dump_json()


async def test_intel_connector_auth_failure_is_a_clear_error(fake: FastAPI) -> None:
    settings = Settings(virustotal_api_key="wrong", virustotal_base_url="http://vt.test/api/v3")
    ctx = make_ctx(
        connectors=Connectors.from_settings(settings, transport=_transport(fake)), settings=settings
    )
    out = await run_tool(ctx, "threat_intel_lookup", {"indicator": VT_MALICIOUS})
    assert (
        out.error_kind == "connector" and "virustotal GET /api/v3/files/" in out.error and "401" in out.error
    )


async def test_crowdstrike_connector(fake: FastAPI) -> None:
    cs = CrowdStrikeConnector("http://cs.test", "cs-id", "cs-secret", **_http(fake))
    host = HostInput(hostname="FIN-WS-042")
    receipt = await cs.perform("isolate_host", host, "k1")
    assert (receipt.status, receipt.external_id, receipt.connector) == ("done", "aid-fin", "crowdstrike")
    (action,) = _calls(fake, "/devices/entities/devices-actions/v2")
    assert action[2] == {"action_name": "contain"} and '"ids":["aid-fin"]' in action[3].replace(" ", "")
    await cs.perform("release_host", host, "k2")
    assert _calls(fake, "/devices/entities/devices-actions/v2")[-1][2] == {"action_name": "lift_containment"}

    kill = await cs.perform("kill_process", KillProcessInput(hostname="FIN-WS-042", pid=4242), "k3")
    assert kill.external_id == "req-1"
    assert '"command_string":"kill4242"' in _calls(fake, "/real-time-response/entities/active")[0][3].replace(
        " ", ""
    )

    ioc = IndicatorInput(indicator=DROPPER_SHA256, type="sha256")
    blocked = await cs.perform("block_indicator", ioc, "k4")
    assert blocked.external_id == "ioc-1"
    assert fake.state.cs_iocs["ioc-1"]["action"] == "prevent"
    unblocked = await cs.perform("unblock_indicator", ioc, "k5")
    assert unblocked.detail == {"removed": ["ioc-1"]} and fake.state.cs_iocs == {}
    assert fake.state.hits["cs-token"] == 1  # token cached across calls

    # The same idempotency key acts once.
    before = len(fake.state.calls)
    again = await cs.perform("isolate_host", host, "k1")
    assert again.duplicate and len(fake.state.calls) == before

    with pytest.raises(ConnectorError, match="cannot disable user"):
        await cs.perform("disable_user", UserInput(username="j.doe"), "k6")
    with pytest.raises(ConnectorError, match="no device with hostname 'NOPE'"):
        await cs.perform("isolate_host", HostInput(hostname="NOPE"), "k7")
    with pytest.raises(ConnectorError, match="cannot block indicators of type 'url'"):
        await cs.perform("block_indicator", IndicatorInput(indicator="http://x.example/", type="url"), "k8")


async def test_crowdstrike_bad_credentials(fake: FastAPI) -> None:
    cs = CrowdStrikeConnector("http://cs.test", "cs-id", "nope", **_http(fake))
    with pytest.raises(ConnectorError, match=r"crowdstrike POST /oauth2/token: HTTP 401"):
        await cs.perform("isolate_host", HostInput(hostname="FIN-WS-042"), "k1")


async def test_defender_connector(fake: FastAPI) -> None:
    md = DefenderConnector(
        "http://md.test", "http://login.test/defender/token", "md-id", "md-secret", **_http(fake)
    )
    host = HostInput(hostname="FIN-WS-042")
    iso = await md.perform("isolate_host", host, "k1")
    assert (iso.external_id, iso.detail["machine_id"]) == ("ma-isolate", "m-fin")
    assert '"IsolationType":"Full"' in _calls(fake, "/api/machines/m-fin/isolate")[0][3].replace(" ", "")
    assert (await md.perform("release_host", host, "k2")).external_id == "ma-unisolate"
    quarantine = QuarantineFileInput(hostname="FIN-WS-042", sha1=SHA1)
    assert (await md.perform("quarantine_file", quarantine, "k3")).external_id == "ma-StopAndQuarantineFile"
    with pytest.raises(ConnectorError, match="needs the file's sha1"):
        await md.perform(
            "quarantine_file", QuarantineFileInput(hostname="FIN-WS-042", sha256=DROPPER_SHA256), "k4"
        )

    ioc = IndicatorInput(indicator="cdn-update-check.example.org", type="domain")
    blocked = await md.perform("block_indicator", ioc, "k5")
    assert blocked.external_id == "17"
    assert (
        fake.state.md_iocs[17]["indicatorType"] == "DomainName"
        and fake.state.md_iocs[17]["action"] == "Block"
    )
    unblocked = await md.perform("unblock_indicator", ioc, "k6")
    assert unblocked.detail["removed"] == ["17"] and fake.state.md_iocs == {}
    with pytest.raises(ConnectorError, match="cannot kill process"):
        await md.perform("kill_process", KillProcessInput(hostname="FIN-WS-042", pid=1), "k7")


async def test_configured_edr_runs_through_guard_and_runner(fake: FastAPI) -> None:
    settings = Settings(
        response_connector="defender",
        defender_base_url="http://md.test",
        defender_token_url="http://login.test/defender/token",
        defender_client_id="md-id",
        defender_client_secret="md-secret",
    )
    conns = Connectors.from_settings(settings, transport=_transport(fake), retry_wait_s=0.0)
    assert isinstance(conns.response, DefenderConnector)
    ctx = make_ctx(connectors=conns, settings=settings)
    decision = Guard(load_policy()).decide(
        ctx, ToolCall(tool="isolate_host", args={"hostname": "FIN-WS-042"})
    )
    out = await run_tool(ctx, "isolate_host", decision.args, decision=decision)
    assert out.status == "ok" and out.output["connector"] == "defender"
    assert out.output["idempotency_key"] == decision.idempotency_key
    # Tickets stay local: there is no ITSM connector.
    ticket = Guard(load_policy()).decide(
        ctx,
        ToolCall(
            tool="create_ticket", args={"title": "Isolated FIN-WS-042", "severity": "high", "summary": "x"}
        ),
    )
    out = await run_tool(ctx, "create_ticket", ticket.args, decision=ticket)
    assert out.output["connector"] == "simulator"


def test_missing_edr_credentials_are_reported() -> None:
    with pytest.raises(ConnectorError, match="SOCTRIAGE_CROWDSTRIKE_CLIENT_ID"):
        Connectors.from_settings(Settings(response_connector="crowdstrike"))
    with pytest.raises(ConnectorError, match="SOCTRIAGE_DEFENDER_TENANT_ID"):
        Connectors.from_settings(Settings(response_connector="defender", defender_client_id="x"))


async def test_idempotency_key_prevents_acting_twice() -> None:
    conns = Connectors.from_settings(Settings())
    sim = conns.response
    assert isinstance(sim, SimulatorConnector)
    ctx = make_ctx(make_alert(), connectors=conns)
    guard = Guard(load_policy())
    decision = guard.decide(
        ctx, ToolCall(tool="block_indicator", args={"indicator": "203.0.113.66", "type": "ip"})
    )
    executed: set[str] = set()

    first = await run_tool(
        ctx, "block_indicator", decision.args, decision=decision, executed_keys=executed.__contains__
    )
    assert first.status == "ok" and first.idempotency_key == decision.idempotency_key
    executed.add(first.idempotency_key)
    # A resumed run: the ledger says the key was executed, so nothing is called.
    resumed = await run_tool(
        ctx, "block_indicator", decision.args, decision=decision, executed_keys=executed.__contains__
    )
    assert resumed.status == "duplicate" and not resumed.executed
    assert len(sim.log) == 1
    # Without the ledger lookup the connector itself dedupes by key.
    again = await run_tool(ctx, "block_indicator", decision.args, decision=decision)
    assert again.output["duplicate"] is True and len(sim.log) == 1
    assert sim.blocked == {"ip:203.0.113.66"}

    # The rollback is recorded, but undoing containment is never an agent's to decide: the guard refuses it
    # and the runner will not run it under that decision.
    rollback = first.rollback
    assert rollback is not None
    undo = guard.decide(ctx, rollback)
    assert (undo.decision, undo.rule_id) == ("deny", "undo-human-only")
    assert undo.idempotency_key != decision.idempotency_key
    out = await run_tool(ctx, rollback.tool, undo.args, decision=undo)
    assert out.status == "refused" and sim.blocked == {"ip:203.0.113.66"}


async def test_simulator_receipts_are_deterministic() -> None:
    a, b = SimulatorConnector(), SimulatorConnector()
    ra = await a.perform("disable_user", UserInput(username="j.doe"), "case-1|disable_user|abc")
    rb = await b.perform("disable_user", UserInput(username="j.doe"), "case-1|disable_user|abc")
    assert ra == rb and ra.status == "simulated" and a.disabled == {"j.doe"}


@pytest.mark.parametrize(
    ("indicator", "kind"),
    [
        ("../../../users/me?x=", "domain"),
        ("../../../users/me?x=", "sha256"),
        ("evil.example", "sha256"),
        (DROPPER_SHA256, "domain"),
        ("10.0.0.1/../x", "ip"),
        ("a" * 40, "sha256"),
    ],
)
async def test_an_indicator_must_be_of_its_stated_type_and_never_reaches_another_api_path(
    fake: FastAPI, indicator: str, kind: str
) -> None:
    settings = Settings(virustotal_api_key="vt-key", virustotal_base_url="http://vt.test/api/v3")
    conns = Connectors.from_settings(settings, transport=_transport(fake), retry_wait_s=0.0)
    ctx = make_ctx(connectors=conns, settings=settings)
    out = await run_tool(ctx, "threat_intel_lookup", {"indicator": indicator, "type": kind})
    assert out.status == "error" and f"not a valid {kind}" in out.error
    assert not _calls(fake, "/api/v3")  # nothing was sent, with the key or without
    with pytest.raises(ValueError, match=f"not a valid {kind}"):
        IndicatorInput(indicator=indicator, type=kind)


async def test_virustotal_puts_an_indicator_in_one_escaped_path_segment() -> None:
    from soctriage.tools.intel import VirusTotalClient

    sent: list[bytes] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.raw_path)
        return httpx2.Response(404, json={"error": {"code": "NotFoundError"}})

    transport = httpx2.MockTransport(record)
    client = VirusTotalClient("vt-key", "http://vt.test/api/v3", transport=transport, retry_wait_s=0.0)
    await client.lookup("../../users/me?x=", "domain")
    assert sent == [b"/api/v3/domains/..%2F..%2Fusers%2Fme%3Fx%3D"]
