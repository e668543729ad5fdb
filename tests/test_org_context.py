"""Organisation context: the YAML loader and its errors, which entries apply to an alert (and which are near
misses), and the `org_context` tool through the tool runner."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from soctriage.service.config import Settings
from soctriage.service.domain import FileInfo, Network, Observable, ParentProcess, Process, User
from soctriage.tools import Connectors, run_tool
from soctriage.tools.datafiles import bundled
from soctriage.tools.known_good import load_tables
from soctriage.tools.org_context import OrgContext, OrgContextReport
from soctriage.tools.org_context_file import OrgContextError
from tools_support import make_alert, make_ctx

EXAMPLE = bundled("org_context.example.yaml")
PAYROLL = "C:\\Program Files\\Corp\\Payroll\\PayrollClient.exe"
PAYROLL_SHA = "4f7c2a4f0d33d3b3a2d0f1c28e5fdd6e3d0e7f5b9c1a2b3c4d5e6f708192a3b4"


@pytest.fixture(scope="module")
def example() -> OrgContext:
    return OrgContext.load(EXAMPLE, load_tables())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "context.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def alert(
    *,
    host: str = "FIN-WS-042",
    user: str | None = "j.doe",
    domain: str | None = "CORP",
    path: str | None = None,
    parent: str | None = None,
    sha256: str | None = None,
    signer: str | None = None,
    valid: bool | None = None,
    src_ip: str | None = None,
    url: str | None = None,
    when: datetime | None = None,
    file: FileInfo | None = None,
    observables: tuple[Observable, ...] = (),
):
    process = (
        Process(
            path=path,
            sha256=sha256,
            signer=signer,
            signature_valid=valid,
            parent=ParentProcess(path=parent) if parent else None,
        )
        if path
        else None
    )
    base = make_alert(hostname=host)
    return base.model_copy(
        update={
            "user": User(name=user, domain=domain) if user else None,
            "process": process,
            "file": file,
            "network": Network(src_ip=src_ip, url=url) if src_ip or url else None,
            "time": when or datetime(2025, 4, 9, 10, 0, tzinfo=UTC),
            "observables": observables,
        }
    )


def ids(report: OrgContextReport) -> tuple[set[str], set[str]]:
    return {h.entry_id for h in report.applies}, {h.entry_id for h in report.near_misses}


# --- loading -------------------------------------------------------------------------------------------


def test_the_example_file_loads_and_documents_every_section(example: OrgContext) -> None:
    data = example.data
    for section in (
        "jump_hosts",
        "admin_tools",
        "scanners",
        "service_accounts",
        "ci_hosts",
        "change_windows",
        "phishing_simulations",
        "web_gateways",
        "internal_software",
    ):
        assert getattr(data, section), f"the example leaves {section} out"
        assert f"\n{section}:" in EXAMPLE.read_text()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("timezone: Mars/Olympus\n", r":1: timezone: unknown time zone"),
        (
            "admin_tools:\n  - id: t\n    name: x\n    process_paths: ['C:\\a.exe']\n    acounts: [x]\n",
            r":5: admin_tools\.0\.acounts: Extra inputs are not permitted",
        ),
        (
            "scanners:\n  - id: s\n    ips: [10.0.0.1]\n    windows:\n      - {start: 8:30, end: '09:00'}\n",
            r":5: scanners\.0\.windows\.0\.start: write clock times in quotes",
        ),
        (
            "jump_hosts:\n  - {id: j1, hostname: J1}\nadmin_tools:\n  - id: t\n    process_paths: ['C:\\a.exe']\n"
            "    used_from: [j2]\n",
            r":6: admin_tools\.0\.used_from: no jump host has id 'j2'",
        ),
        (
            "web_gateways:\n  - id: gw\n    egress_ips: [10.0.0.300]\n",
            r":3: web_gateways\.0\.egress_ips: .*not an IP address",
        ),
        (
            "phishing_simulations:\n  - id: p\n    senders: ['*@sim.example']\n",
            r":2: phishing_simulations\.0: .*needs sender_ips or domains",
        ),
        (
            "admin_tools:\n  - id: t\n    known_good: [NoSuchTool]\n",
            r":3: admin_tools\.0\.known_good\.0: 'NoSuchTool' is neither",
        ),
        ("admin_tools: [\n", r":2: not valid YAML"),
        ("- a\n- b\n", r":1: the file must be a mapping"),
    ],
)
def test_loader_errors_name_the_file_the_line_and_the_field(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(OrgContextError, match=r"context\.yaml" + where):
        OrgContext.load(path, load_tables())


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OrgContextError, match=r"nowhere\.yaml: cannot read organisation context"):
        OrgContext.load(tmp_path / "nowhere.yaml")


# --- evaluation ----------------------------------------------------------------------------------------


def test_an_admin_tool_applies_from_its_jump_host_and_is_a_near_miss_elsewhere(example: OrgContext) -> None:
    psexesvc = {"path": "C:\\Windows\\PSEXESVC.exe", "parent": "C:\\Windows\\System32\\services.exe"}
    from_jump = example.evaluate(alert(host="SQL-PROD-01", user="adm-jdoe", src_ip="10.10.5.5", **psexesvc))
    assert ids(from_jump) == ({"admin-psexec"}, set())
    (hit,) = from_jump.applies
    assert {(f.condition, f.value) for f in hit.matched} >= {
        ("src_ip", "10.10.5.5"),
        ("account", "CORP\\adm-jdoe"),
    }
    on_jump = example.evaluate(alert(host="jump-01.corp.example", user="adm-jdoe", path=psexesvc["path"]))
    assert ids(on_jump) == ({"admin-psexec"}, set())
    stolen = example.evaluate(alert(host="SQL-PROD-01", user="adm-jdoe", src_ip="10.20.4.42", **psexesvc))
    assert ids(stolen) == (set(), {"admin-psexec"})
    assert stolen.near_misses[0].unmet == ("origin",)
    # The account alone says nothing about PsExec: no near miss without the program.
    assert ids(example.evaluate(alert(host="SQL-PROD-01", user="adm-jdoe", src_ip="10.20.4.42"))) == (
        set(),
        set(),
    )


def test_an_admin_tool_can_be_named_by_the_known_good_table(example: OrgContext) -> None:
    screenconnect = alert(
        user="SYSTEM",
        domain="NT AUTHORITY",
        path="C:\\Program Files (x86)\\ScreenConnect Client (8d2c)\\ScreenConnect.ClientService.exe",
    )
    kg = load_tables().match(screenconnect)
    assert any(m.tool == "ScreenConnect" for m in kg)
    assert ids(example.evaluate(screenconnect, kg)) == ({"admin-screenconnect"}, set())
    assert ids(example.evaluate(screenconnect, ())) == (set(), set())


def test_scanner_windows_are_local_time_and_may_run_past_midnight(example: OrgContext) -> None:
    # Europe/London, Wednesday 22:00 to Thursday 03:00; in April London is UTC+1.
    def logon(when: datetime, src: str = "10.10.9.20") -> OrgContextReport:
        return example.evaluate(alert(host="DC01", user="svc-nessus", src_ip=src, when=when))

    assert ids(logon(datetime(2025, 4, 9, 21, 30, tzinfo=UTC))) == ({"scan-nessus"}, set())  # Wed 22:30
    assert ids(logon(datetime(2025, 4, 10, 1, 30, tzinfo=UTC))) == ({"scan-nessus"}, set())  # Thu 02:30
    late = logon(datetime(2025, 4, 10, 2, 30, tzinfo=UTC))  # Thu 03:30
    assert ids(late) == (set(), {"scan-nessus"}) and late.near_misses[0].unmet == ("time_window",)
    assert ids(logon(datetime(2025, 4, 12, 0, 30, tzinfo=UTC))) == ({"scan-nessus"}, set())  # Sat 01:30
    elsewhere = logon(datetime(2025, 4, 12, 0, 30, tzinfo=UTC), src="10.20.4.42")
    assert ids(elsewhere) == (set(), {"scan-nessus"}) and elsewhere.near_misses[0].unmet == ("origin",)


def test_service_accounts_are_bound_to_their_hosts_and_programs(example: OrgContext) -> None:
    veeam = "C:\\Program Files\\Veeam\\Endpoint Backup\\Veeam.EndPoint.Service.exe"
    assert ids(example.evaluate(alert(host="BACKUP-02", user="svc-veeam", path=veeam))) == (
        {"svc-veeam"},
        set(),
    )
    fake = example.evaluate(alert(host="BACKUP-02", user="svc-veeam", path="C:\\ProgramData\\Veeam\\v.exe"))
    assert ids(fake) == (set(), {"svc-veeam"}) and fake.near_misses[0].unmet == ("program",)
    wrong_host = example.evaluate(alert(host="FIN-WS-042", user="svc-veeam", path=veeam))
    assert wrong_host.near_misses[0].unmet == ("host",)


def test_internal_software_is_pinned_by_hash_and_signer(example: OrgContext) -> None:
    signed = alert(path=PAYROLL, sha256=PAYROLL_SHA, signer="Corp Example Ltd", valid=True)
    assert ids(example.evaluate(signed)) == ({"sw-payroll-client"}, set())
    # No signer reported (as CrowdStrike): the pinned hash is enough.
    assert ids(example.evaluate(alert(path=PAYROLL, sha256=PAYROLL_SHA))) == ({"sw-payroll-client"}, set())
    # A signer reported invalid is held against it, hash or not.
    forged = alert(path=PAYROLL, sha256=PAYROLL_SHA, signer="Corp Example Ltd", valid=False)
    assert ids(example.evaluate(forged)) == (set(), {"sw-payroll-client"})
    swapped = example.evaluate(alert(path=PAYROLL, sha256="0" * 63 + "1"))
    assert ids(swapped) == (set(), {"sw-payroll-client"}) and swapped.near_misses[0].unmet == ("program",)
    as_file = alert(path=None, file=FileInfo(path=PAYROLL, sha256=PAYROLL_SHA))
    (hit,) = example.evaluate(as_file).applies
    assert {f.role for f in hit.matched} == {"file"}


def test_phishing_simulations_are_known_by_where_they_come_from_and_link_to(example: OrgContext) -> None:
    sim = "https://go.training-phish.example/l/1"
    assert ids(example.evaluate(alert(src_ip="198.51.100.201", url=sim))) == ({"phish-sim-q2"}, set())
    assert ids(example.evaluate(alert(url=sim))) == ({"phish-sim-q2"}, set())  # no sender IP in the alert
    lookalike = "https://go.training-phish.example.evil.example/l/1"
    assert ids(example.evaluate(alert(src_ip="192.0.2.7", url=lookalike))) == (set(), set())
    forged = (Observable(type="email", value="hr@training-phish.example"),)
    assert ids(example.evaluate(alert(src_ip="192.0.2.7", url=lookalike, observables=forged))) == (
        set(),
        set(),
    )
    mixed = example.evaluate(alert(src_ip="192.0.2.7", url=sim))
    assert ids(mixed) == (set(), {"phish-sim-q2"}) and mixed.near_misses[0].unmet == ("sender_ip",)


def test_change_windows_and_gateways_and_ci_hosts(example: OrgContext) -> None:
    during = datetime(2025, 4, 12, 22, 0, tzinfo=UTC)
    assert "chg-2025-0412-agent-upgrade" in ids(example.evaluate(alert(when=during)))[0]
    assert not ids(example.evaluate(alert(when=datetime(2025, 4, 14, 22, 0, tzinfo=UTC))))[1]
    gateway = example.evaluate(alert(src_ip="203.0.113.9"))
    assert "proxy-egress" in ids(gateway)[0]
    runner = alert(host="ci-runner-07", user="gitlab-runner", domain=None, path="/usr/bin/gitlab-runner")
    assert "ci-linux-runners" in ids(example.evaluate(runner))[0]


def test_without_a_context_file_nothing_applies() -> None:
    report = OrgContext().evaluate(alert(path="C:\\Windows\\PSEXESVC.exe"))
    assert report == OrgContextReport(configured=False)


# --- the tool ------------------------------------------------------------------------------------------


async def test_org_context_tool_reports_entries_to_cite_for_the_case_alert() -> None:
    settings = Settings(context_path=EXAMPLE)
    ctx = make_ctx(
        alert(host="SQL-PROD-01", user="adm-jdoe", src_ip="10.10.5.5", path="C:\\Windows\\PSEXESVC.exe"),
        settings=settings,
        connectors=Connectors.from_settings(settings),
    )
    outcome = await run_tool(ctx, "org_context", {})
    assert outcome.ok, outcome.error
    assert outcome.output is not None
    assert outcome.output["configured"] is True and outcome.output["source"] == str(EXAMPLE)
    assert [h["entry_id"] for h in outcome.output["applies"]] == ["admin-psexec"]
    assert outcome.entities == ()


async def test_org_context_tool_without_a_file_and_with_model_arguments() -> None:
    outcome = await run_tool(make_ctx(), "org_context", {})
    assert outcome.ok and outcome.output == {
        "configured": False,
        "source": None,
        "applies": [],
        "near_misses": [],
    }
    refused = await run_tool(make_ctx(), "org_context", {"hostname": "DC01"})
    assert refused.status == "error" and refused.error_kind == "invalid_args"


def test_a_bad_context_file_stops_start_up_with_its_location(tmp_path: Path) -> None:
    path = write(tmp_path, "scanners:\n  - id: s\n")
    with pytest.raises(OrgContextError, match=r"context\.yaml:2: scanners\.0: .*needs hostnames or ips"):
        Connectors.from_settings(Settings(context_path=path))
