"""Vendor samples (the vendor eval suite's data): every line normalizes, with the entities the vendor sent."""

from __future__ import annotations

import pytest
from soctriage.evals.suite import SUITES_ROOT
from soctriage.service.domain import Alert
from soctriage.service.ingest import Rejection, normalize_bytes

VENDOR = SUITES_ROOT / "vendor" / "data"

# file → one (hostname, user name, process name, severity label) per alert, in input order.
EXPECTED = {
    "crowdstrike-alerts-api.jsonl": [
        (
            "ABC709-1175",
            "mohit.jha",
            "openvpn-abc-pfSense-UDP4-1194-pfsense-install-2.6.5-I001-amd64.exe",
            "Low",
        ),
        ("ABDC454.net.example.com", "admin.abcdef", None, "High"),
        ("INCHAKLSP049", "admin.abcd", "Explorer.EXE", "Medium"),
    ],
    "crowdstrike-falcon-stream-detection-summary.jsonl": [
        ("ELASTICHOST", "ELASTICUSER", "TESTFILE.exe", "Low")
    ]
    * 2,
    "crowdstrike-falcon-stream-epp.jsonl": [
        ("DESKTOP1111", "USER11111", "rfusclient.exe", "Low"),
        ("linux-vm", "azureuser", "git", "High"),
        ("FRHOSTNAME", None, None, "High"),
        ("linux-vm", "azureuser", "git", "High"),
        ("CISO-DUMMY-CSDEV", "Administrator", "choice.exe", "Low"),
        ("CISO-DUMMY-CSDEV", "Administrator", "atera.exe.exe", "High"),
    ],
    "defender-endpoint-alerts.jsonl": [
        ("testserver4", None, None, "Low"),
        ("testserver4", "administrator1", "notepad.exe", "Medium"),
        ("testserver4", "administrator1", None, "Medium"),
        ("testserver4", None, None, "Informational"),
    ],
    "m365-graph-alerts.jsonl": [("tempDns", "SYSTEM", "MsSense.exe", "Low")],
    "m365-incidents.jsonl": [("tempDns", "SYSTEM", "MsSense.exe", "Low")],
    "sentinelone-alerts.jsonl": [
        ("string", "string", "string", "Low"),
        ("srv-win1", "SYSTEM", "powershell.exe", "Critical"),
        ("srv-win1", "SYSTEM", "powershell.exe", "Critical"),
    ],
    "sentinelone-threats.jsonl": [
        ("test-LINUX", "test user", "default.exe", "High"),
        *[("test-LINUX", "test_user", "user", "High")] * 4,
        ("arvchristos MacBook Pro", "root", "ArchiveService", "High"),
    ],
    "wazuh-alerts.jsonl": [
        (
            "FIN-LT-114",
            "m.okafor",
            "C:\\\\Program Files (x86)\\\\Microsoft\\\\Edge\\\\Application\\\\msedge.exe",
            "High",
        ),
        ("LAB-WS-07", None, None, "Low"),
        ("bastion-02", "oracle", None, "Medium"),
        ("web-03", None, None, "Medium"),
    ],
}


def _load(name: str) -> list[Alert | Rejection]:
    path = VENDOR / name
    return list(normalize_bytes(path.read_bytes(), name))


def _alerts(name: str) -> list[Alert]:
    results = _load(name)
    rejected = [r.message() for r in results if isinstance(r, Rejection)]
    assert not rejected, rejected
    return [r for r in results if isinstance(r, Alert)]


def test_every_vendor_fixture_file_is_covered() -> None:
    folder = VENDOR
    assert sorted(p.name for p in folder.glob("*.jsonl")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_line_normalizes_with_its_entities(name: str) -> None:
    alerts = _alerts(name)
    got = [
        (
            a.device.hostname if a.device else None,
            a.user.name if a.user else None,
            a.process.name if a.process else None,
            a.severity.label,
        )
        for a in alerts
    ]
    assert got == EXPECTED[name]
    for alert in alerts:
        assert alert.severity.id != 0
        assert alert.title
        assert all(a.technique_id is None or a.technique_id.startswith("T") for a in alert.attacks)
        assert alert.unmapped, "vendor fields that were not mapped must be kept"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_raw_is_the_exact_input_line(name: str) -> None:
    lines = (VENDOR / name).read_text(encoding="utf-8").splitlines()
    for alert in _alerts(name):
        if name == "m365-incidents.jsonl":
            assert alert.raw in lines[0]  # the incident's alert is a part of its line
        else:
            assert alert.raw in lines


def test_defender_line_2_process_host_and_user() -> None:
    alert = _alerts("defender-endpoint-alerts.jsonl")[1]
    assert alert.title == "Suspicious process injection observed"
    assert alert.device is not None and alert.device.hostname == "testserver4"
    assert alert.process is not None
    assert alert.process.name == "notepad.exe"
    assert alert.process.pid == 4104
    assert alert.process.cmdline == '"notepad.exe"'
    assert alert.process.path == "C:\\Windows\\System32\\notepad.exe"
    assert alert.process.sha256 == "a92056d772260b39a876d01552496b2f8b4610a0b1e084952fe1176784e2ce77"
    assert alert.process.parent is not None and alert.process.parent.pid == 6012
    assert alert.user is not None and (alert.user.name, alert.user.domain) == (
        "administrator1",
        "TestServer4",
    )
    assert [(a.tactic, a.tactic_id) for a in alert.attacks] == [("Defense Evasion", "TA0005")]


def test_defender_rows_of_one_alert_share_its_id_and_empty_page_yields_nothing() -> None:
    results = _load("defender-endpoint-alerts.jsonl")
    assert all(isinstance(r, Alert) for r in results)
    assert len(results) == 4  # line 5 is `{"value":[]}`: an empty page, not an error
    assert results[1].id == results[2].id
    assert (
        results[2].user is not None and results[2].user.uid == "S-1-5-21-46152456-1367606905-4031241297-500"
    )
    assert len({r.id for r in results}) == 3


def test_graph_incident_yields_its_alert_with_incident_context() -> None:
    (alert,) = _alerts("m365-incidents.jsonl")
    (graph,) = _alerts("m365-graph-alerts.jsonl")
    assert alert.id == graph.id
    assert alert.unmapped["incident"]["classification"] == "truePositive"
    assert alert.unmapped["incident"]["id"] == "2972395"
    assert alert.techniques == ("T1564.001",)
    assert alert.process is not None and alert.process.parent is not None
    assert alert.process.parent.name == "services.exe"


def test_crowdstrike_pseudo_ids_are_not_attack_ids() -> None:
    pup, identity, scan = _alerts("crowdstrike-alerts-api.jsonl")
    assert pup.attacks == () and scan.attacks == ()
    assert pup.unmapped["tactic_id"] == "CSTA0004" and pup.unmapped["technique_id"] == "CST0000"
    assert scan.unmapped["technique_id"] == "CST0007"
    assert [(a.tactic_id, a.tactic, a.technique_id, a.technique_name) for a in identity.attacks] == [
        ("TA0006", "Credential Access", "T1110", "Brute Force")
    ]
    assert identity.user is not None and identity.user.domain == "NET.example.com"
    assert ("hostname", "GH787.net.example.com") in {(o.type, o.value) for o in identity.observables}


def test_crowdstrike_stream_events_are_unwrapped() -> None:
    rfus = _alerts("crowdstrike-falcon-stream-epp.jsonl")[0]
    assert rfus.process is not None and rfus.process.parent is not None
    assert rfus.process.parent.name == "rutserv.exe"
    assert rfus.process.sha256 == "faf0c5e4ef7dbcfd863377c55a4d1d87a3f6a58c13a8a9882e11012066f31976"
    assert rfus.file is not None and rfus.file.sha1 is None  # an all-zero hash is no hash
    legacy = _alerts("crowdstrike-falcon-stream-detection-summary.jsonl")[0]
    assert legacy.network is not None and (legacy.network.dst_ip, legacy.network.dst_port) == (
        "67.43.156.1",
        443,
    )


def test_wazuh_mitre_users_and_urls() -> None:
    eicar, _, brute, clamav = _alerts("wazuh-alerts.jsonl")
    assert (eicar.user.domain, eicar.user.name) == ("CORP", "m.okafor")  # type: ignore[union-attr]
    assert ("url", "https://www.eicar.org/download/eicar_com.zip") in {
        (o.type, o.value) for o in eicar.observables
    }
    assert [(a.tactic_id, a.technique_id) for a in brute.attacks] == [("TA0006", "T1110")]
    assert brute.network is not None and brute.network.src_ip == "203.0.113.145"
    assert brute.time.isoformat() == "2024-06-19T02:17:55.861000+00:00"
    assert clamav.description and "Eicar-Signature FOUND" in clamav.description


def test_sentinelone_alert_process_tree() -> None:
    alert = _alerts("sentinelone-alerts.jsonl")[1]
    assert alert.process is not None and alert.process.pid == 1252
    assert alert.process.parent is not None and alert.process.parent.name == "CompatTelRunner.exe"
    assert alert.rule is not None and (alert.rule.name, alert.rule.uid) == ("test5", "1412136126226508571")


def test_all_fixture_files_as_one_jsonl_input() -> None:
    folder = VENDOR
    data = b"".join(p.read_bytes().rstrip(b"\n") + b"\n" for p in sorted(folder.glob("*.jsonl")))
    results = list(normalize_bytes(data * 10, "all"))
    assert all(isinstance(r, Alert) for r in results)
    assert len(results) == 10 * sum(len(v) for v in EXPECTED.values())
