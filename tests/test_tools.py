"""Tool registry, runner and the offline read tools, through the public `soctriage.tools` API."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from pydantic import BaseModel
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, ParentProcess, Process
from soctriage.tools import (
    Connectors,
    Registry,
    ToolCall,
    ToolError,
    args_hash,
    default_registry,
    run_tool,
    tool,
)
from soctriage.tools.attack import AttackCatalog, AttackDataError
from soctriage.tools.intel import IntelFileError, LocalIntel, detect_type, load_intel_file
from soctriage.tools.inventory import Inventory, InventoryError
from soctriage.tools.lolbins import LolbinCatalog
from soctriage.tools.tool_spec import RegistryError, ToolOutput
from tools_support import DROPPER_SHA256, make_alert, make_ctx

EXPECTED_TOOLS = {
    "threat_intel_lookup",
    "asset_context",
    "identity_context",
    "attack_lookup",
    "lolbin_lookup",
    "process_lineage",
    "similar_cases",
    "knowledge_search",
    "known_good_lookup",
    "org_context",
    "isolate_host",
    "release_host",
    "kill_process",
    "quarantine_file",
    "block_indicator",
    "unblock_indicator",
    "disable_user",
    "enable_user",
    "create_ticket",
    "suppression_rules_lookup",
}


class EchoIn(BaseModel):
    text: str
    times: int = 1


class EchoOut(ToolOutput):
    text: str

    def summary(self) -> str:
        return f"echoed {self.text}"


class Plain(BaseModel):
    text: str


class Unsaid(ToolOutput):
    text: str


@tool(tier="read", timeout_s=1.0)
def echo(args: EchoIn) -> EchoOut:
    """Repeat the text."""
    return EchoOut(text=args.text * args.times)


@tool(tier="read", timeout_s=0.05)
async def slow(args: EchoIn) -> EchoOut:
    """Sleeps longer than its timeout."""
    await asyncio.sleep(1)
    return EchoOut(text=args.text)


@tool(tier="read", timeout_s=0.05)
def slow_sync(args: EchoIn) -> EchoOut:
    """A blocking tool that overruns its timeout."""
    time.sleep(0.3)
    return EchoOut(text=args.text)


@tool(tier="read")
def broken(args: EchoIn) -> EchoOut:
    """Always fails."""
    raise ToolError("upstream said no")


@tool(tier="read")
def buggy(args: EchoIn) -> EchoOut:
    """Has a bug."""
    return {"text": "not a model"}  # type: ignore[return-value]


@pytest.fixture
def ctx():
    return make_ctx()


def test_default_registry_has_every_tool_with_tier_and_rollbacks() -> None:
    reg = default_registry()
    assert set(reg.names()) == EXPECTED_TOOLS
    assert set(reg.names("read")) == {
        "threat_intel_lookup",
        "asset_context",
        "identity_context",
        "attack_lookup",
        "lolbin_lookup",
        "process_lineage",
        "similar_cases",
        "knowledge_search",
        "known_good_lookup",
        "org_context",
        "suppression_rules_lookup",
    }
    assert set(reg.names("destructive")) == {"disable_user", "enable_user"}
    assert reg.get("isolate_host").rollback == "release_host"
    assert reg.get("block_indicator").rollback == "unblock_indicator"
    assert reg.get("disable_user").rollback == "enable_user"
    assert reg.get("create_ticket").idempotent is False
    call = reg.rollback_call(ToolCall(tool="isolate_host", args={"hostname": "FIN-WS-042"}))
    assert call == ToolCall(tool="release_host", args={"hostname": "FIN-WS-042"})


def test_schema_comes_from_the_input_model_and_docstring() -> None:
    reg = Registry([echo])
    (schema,) = reg.schemas()
    assert schema["name"] == "echo"
    assert schema["description"] == "Repeat the text."
    assert schema["parameters"]["required"] == ["text"]
    assert schema["parameters"]["properties"]["times"]["default"] == 1
    (oa,) = default_registry().openai_tools(["threat_intel_lookup"])
    assert oa["type"] == "function"
    assert oa["function"]["name"] == "threat_intel_lookup"
    assert "indicator" in oa["function"]["parameters"]["properties"]
    assert oa["function"]["parameters"]["additionalProperties"] is False
    json.dumps(default_registry().openai_tools())  # every schema is plain JSON


def test_bad_tool_definitions_fail_at_registration() -> None:
    def no_model(x: int) -> EchoOut:
        """Doc."""
        return EchoOut(text="")

    with pytest.raises(RegistryError, match="pydantic model"):
        tool(tier="read")(no_model)

    def no_doc(args: EchoIn) -> EchoOut:
        return EchoOut(text="")

    with pytest.raises(RegistryError, match="docstring"):
        tool(tier="read")(no_doc)

    def plain(args: EchoIn) -> Plain:
        """Returns a model that cannot say what it found."""
        return Plain(text="")

    def unsaid(args: EchoIn) -> Unsaid:
        """Returns an output without its one-line summary."""
        return Unsaid(text="")

    with pytest.raises(RegistryError, match="ToolOutput"):
        tool(tier="read")(plain)
    with pytest.raises(RegistryError, match="summary"):
        tool(tier="read")(unsaid)
    with pytest.raises(RegistryError, match="lacks"):
        tool(tier="contain", targets={"host": "host"})(echo)
    with pytest.raises(RegistryError, match="twice"):
        Registry([echo, echo])


async def test_runner_validates_and_names_the_bad_field(ctx) -> None:
    reg = Registry([echo])
    ok = await run_tool(ctx, "echo", {"text": "ab", "times": 2}, registry=reg)
    assert ok.status == "ok" and ok.output == {"text": "abab"}
    assert ok.args_hash == args_hash({"text": "ab", "times": 2})
    bad = await run_tool(ctx, "echo", {"text": "ab", "times": "many"}, registry=reg)
    assert (bad.status, bad.error_kind) == ("error", "invalid_args")
    assert "echo.times" in bad.error
    missing = await run_tool(ctx, "echo", {}, registry=reg)
    assert "echo.text: Field required" in missing.error
    unknown = await run_tool(ctx, "nope", {}, registry=reg)
    assert unknown.error_kind == "unknown_tool"


async def test_runner_turns_timeouts_and_failures_into_outcomes(ctx) -> None:
    reg = Registry([slow, slow_sync, broken, buggy])
    started = time.perf_counter()
    out = await run_tool(ctx, "slow", {"text": "x"}, registry=reg)
    assert (out.status, out.error_kind) == ("error", "timeout")
    assert "timed out after 0.05s" in out.error
    out = await run_tool(ctx, "slow_sync", {"text": "x"}, registry=reg)
    assert out.error_kind == "timeout"
    assert time.perf_counter() - started < 0.5
    out = await run_tool(ctx, "broken", {"text": "x"}, registry=reg)
    assert (out.error_kind, out.error) == ("tool", "broken: upstream said no")
    out = await run_tool(ctx, "buggy", {"text": "x"}, registry=reg)
    assert out.error_kind == "tool" and "returned dict" in out.error


@pytest.mark.parametrize(
    ("indicator", "verdict", "kind"),
    [
        (DROPPER_SHA256, "malicious", "sha256"),
        (DROPPER_SHA256.upper(), "malicious", "sha256"),
        ("203.0.113.66", "malicious", "ip"),
        ("192.0.2.44", "suspicious", "ip"),
        ("8.8.8.8", "benign", "ip"),
        ("CDN-Update-Check.example.org", "malicious", "domain"),
        ("http://198.51.100.23/stage2.ps1", "malicious", "url"),
        ("275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f", "benign", "sha256"),
        ("198.51.100.99", "unknown", "ip"),
    ],
)
async def test_threat_intel_offline(ctx, indicator: str, verdict: str, kind: str) -> None:
    out = await run_tool(ctx, "threat_intel_lookup", {"indicator": indicator})
    assert out.status == "ok", out.error
    assert (out.output["verdict"], out.output["type"]) == (verdict, kind)


async def test_threat_intel_rejects_unrecognisable_indicator(ctx) -> None:
    out = await run_tool(ctx, "threat_intel_lookup", {"indicator": "not an indicator!"})
    assert out.error_kind == "tool" and "pass `type`" in out.error


def test_intel_file_errors_name_file_line_and_field(tmp_path: Path) -> None:
    good = tmp_path / "extra.yaml"
    good.write_text(
        "indicators:\n  - {indicator: evil.example.net, type: domain, verdict: malicious, score: 80, source: x}\n"
    )
    assert LocalIntel.from_paths([good]).lookup("EVIL.example.net", "domain")[0].verdict == "malicious"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"indicator": "1.2.3.4", "type": "ip", "verdict": "malicious", "score": 5, "source": "x"}\n'
        '{"indicator": "1.2.3.5", "type": "ip", "verdict": "evil", "score": 5, "source": "x"}\n'
    )
    with pytest.raises(IntelFileError, match=r"bad.jsonl: line 2: field 'verdict'"):
        load_intel_file(bad)
    bad.write_text(
        '{"indicator": "300.1.1.1", "type": "ip", "verdict": "benign", "score": 0, "source": "x"}\n'
    )
    with pytest.raises(IntelFileError, match="line 1: field 'indicator': not a valid ip"):
        load_intel_file(bad)
    assert detect_type("a" * 40) == "sha1"
    assert detect_type("https://x.example/a") == "url"


async def test_settings_intel_paths_add_indicators(tmp_path: Path) -> None:
    extra = tmp_path / "more.jsonl"
    extra.write_text(
        '{"indicator": "192.0.2.200", "type": "ip", "verdict": "malicious", "score": 70, "source": "isac"}\n'
    )
    settings = Settings(intel_paths=[extra])
    out = await run_tool(make_ctx(settings=settings), "threat_intel_lookup", {"indicator": "192.0.2.200"})
    assert out.output["verdict"] == "malicious"
    assert out.output["hits"][0]["source"] == "isac"


@pytest.mark.parametrize(
    ("host", "criticality", "role"),
    [
        ("DC01", "critical", "domain_controller"),
        ("dc01.corp.example", "critical", "domain_controller"),
        ("FIN-WS-042", "medium", "workstation"),
        ("WEB-01", "high", "server"),
        ("LAB-VM", "low", "test"),
        ("NOT-THERE", "unknown", "unknown"),
    ],
)
async def test_asset_context(ctx, host: str, criticality: str, role: str) -> None:
    out = await run_tool(ctx, "asset_context", {"hostname": host})
    assert (out.output["criticality"], out.output["role"]) == (criticality, role)


async def test_identity_context(ctx) -> None:
    out = await run_tool(ctx, "identity_context", {"username": "CORP\\adm.kchen"})
    assert out.output["privileged"] is True and out.output["known"] is True
    out = await run_tool(ctx, "identity_context", {"username": "j.doe@corp.example"})
    assert out.output["department"] == "Finance" and out.output["privileged"] is False
    out = await run_tool(ctx, "identity_context", {"username": "ghost"})
    assert out.output["known"] is False


def test_inventory_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("hosts:\n  - hostname: X\n    criticality: huge\n")
    with pytest.raises(InventoryError, match=r"inv.yaml: hosts.0.criticality"):
        Inventory.load(path)


async def test_attack_lookup_bundled_table() -> None:
    settings = Settings()
    ctx = make_ctx(connectors=Connectors.from_settings(settings), settings=settings)
    out = await run_tool(ctx, "attack_lookup", {"technique_id": "t1059.001"})
    assert out.output["status"] == "found"
    tech = out.output["technique"]
    assert (tech["name"], tech["is_subtechnique"], tech["parent"]) == ("PowerShell", True, "T1059")
    assert out.output["parent"]["name"] == "Command and Scripting Interpreter"
    revoked = await run_tool(ctx, "attack_lookup", {"technique_id": "T1086"})
    assert revoked.output["status"] == "revoked"
    assert revoked.output["replacement"]["id"] == "T1059.001"
    unknown = await run_tool(ctx, "attack_lookup", {"technique_id": "T9999"})
    assert unknown.output["status"] == "unknown"
    assert out.output["source"] == "ATT&CK v18.1 Enterprise (bundled)"


def test_the_bundled_attack_table_is_the_whole_v18_1_enterprise_matrix() -> None:
    catalog = AttackCatalog.bundled()
    assert len(catalog) == 835
    assert sum(not t.revoked and not t.deprecated for t in catalog.techniques()) == 691
    assert catalog.get("T1002").revoked and catalog.get("T1002").revoked_by == "T1560"
    assert set(catalog.get("T1218.011").tactics) == {"defense-evasion"}


def test_attack_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "T1", "name": "x"}\n{"id": "T2"}\n')
    with pytest.raises(AttackDataError, match=r"t.jsonl:2: field 'name'"):
        AttackCatalog.from_jsonl(path)


# A LOLBAS export has this shape (one YAML entry as JSON a line); the rows here were written for this test.
LOLBAS_ROWS = [
    {
        "Name": "Certutil.exe",
        "Description": "Certificate tool",
        "Commands": [
            {"Category": "Download", "MitreID": "T1105"},
            {"Category": "Decode", "MitreID": "T1140"},
        ],
    },
    {
        "Name": "Mshta.exe",
        "Description": "HTA host",
        "Commands": [{"Category": "Execute", "MitreID": "T1218.005"}],
    },
]


@pytest.mark.parametrize("catalog", ["builtin", "lolbas"])
def test_lolbin_catalogs(catalog: str, tmp_path: Path) -> None:
    export = tmp_path / "lolbas.jsonl"
    export.write_text("".join(json.dumps(row) + "\n" for row in LOLBAS_ROWS))
    cat = LolbinCatalog.builtin() if catalog == "builtin" else LolbinCatalog.from_lolbas_jsonl(export)
    certutil = cat.get("C:\\Windows\\System32\\CertUtil.exe")
    assert certutil is not None and "Download" in certutil.categories and "T1105" in certutil.attack_ids
    assert cat.get("mshta") is not None
    assert cat.get("notepad.exe") is None


async def test_lolbin_lookup_tool(ctx) -> None:
    out = await run_tool(ctx, "lolbin_lookup", {"name": "C:/Windows/System32/regsvr32.exe"})
    assert out.output["is_lolbin"] is True and out.output["name"] == "regsvr32.exe"
    assert any(t.startswith("T1218") for t in out.output["lolbin"]["attack_ids"])


async def test_process_lineage_flags(ctx) -> None:
    out = await run_tool(ctx, "process_lineage", {})
    assert out.status == "ok"
    flags = set(out.output["flags"])
    assert {"office_spawns_shell", "encoded_powershell", "download_cradle", "lolbin_in_chain"} <= flags
    assert "DownloadString('http://198.51.100.23/stage2.ps1')" in out.output["decoded_powershell"]
    assert [n["name"] for n in out.output["chain"]] == ["WINWORD.EXE", "powershell.exe"]
    assert "4242" in out.entities


async def test_process_lineage_benign_and_empty() -> None:
    benign = make_alert(
        process=Process(
            name="notepad.exe",
            pid=10,
            path="C:\\Windows\\notepad.exe",
            cmdline="notepad.exe a.txt",
            parent=ParentProcess(name="chrome.exe", pid=5),
        )
    )
    out = await run_tool(make_ctx(benign), "process_lineage", {})
    assert out.output["flags"] == []
    out = await run_tool(make_ctx(make_alert(process=None)), "process_lineage", {})
    assert out.output["chain"] == []


async def test_inventory_covers_the_bundled_sample_alerts() -> None:
    """The demo is coherent only when the guard knows every sample host (else each needs approval)."""
    from soctriage.service.ingest import normalize_bytes

    samples = sorted((Path(__file__).parents[1] / "service" / "samples").glob("*.json"))
    if not samples:
        pytest.skip("no bundled sample alerts yet")
    inventory = Inventory.load(Path(__file__).parents[1] / "tools" / "data" / "inventory.yaml")
    for path in samples:
        for alert in normalize_bytes(path.read_bytes(), str(path)):
            assert isinstance(alert, Alert), alert
            if alert.device and alert.device.hostname:
                assert inventory.host(alert.device.hostname), (
                    f"{path.name}: {alert.device.hostname} not in inventory"
                )
            if alert.user and alert.user.name:
                assert inventory.user(alert.user.name), f"{path.name}: {alert.user.name} not in inventory"
