"""Known-good software: the matcher over normalized alerts, the specificity rules, the table loader, the
bundled table built from SigmaHQ and LOLRMM, and the `known_good_lookup` tool through the tool runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from soctriage.service.config import Settings
from soctriage.service.domain import Attack, FileInfo, ParentProcess, Process, Rule, User
from soctriage.tools import Connectors, run_tool
from soctriage.tools.known_good import BUNDLED_KNOWN_GOOD, KnownGoodTable, load_tables, match
from soctriage.tools.known_good_entries import KnownGoodEntry, KnownGoodError
from tools_support import make_alert, make_ctx

SOURCE = {"kind": "local", "id": "test", "title": "written for this test", "license": "Apache-2.0"}
MSMPENG = "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24090.11-0\\MsMpEng.exe"


def entry(criteria: dict[str, Any], kind: str = "benign_software", **extra: Any) -> KnownGoodEntry:
    return KnownGoodEntry.model_validate(
        {"id": "e1", "name": "test entry", "kind": kind, "match": criteria, "sources": [SOURCE], **extra}
    )


def table(*entries: KnownGoodEntry) -> KnownGoodTable:
    return KnownGoodTable(entries)


def alert(
    path: str | None = None,
    *,
    parent: str | None = None,
    cmdline: str | None = None,
    signer: str | None = None,
    valid: bool | None = None,
    user: str = "SYSTEM",
    domain: str | None = "NT AUTHORITY",
    techniques: tuple[str, ...] = (),
    rule_uid: str | None = None,
    file_path: str | None = None,
):
    process = Process(
        name=path.rsplit("\\", 1)[-1] if path else None,
        path=path,
        cmdline=cmdline,
        signer=signer,
        signature_valid=valid,
        parent=ParentProcess(path=parent) if parent else None,
    )
    return make_alert(
        process=process,
        user=User(name=user, domain=domain),
        attacks=tuple(Attack(technique_id=t) for t in techniques),
        rule=Rule(name="r", uid=rule_uid) if rule_uid else None,
        file=FileInfo(path=file_path) if file_path else None,
    )


# --- matching ------------------------------------------------------------------------------------------


def test_path_globs_match_whole_paths_case_insensitively_and_stay_in_their_folder() -> None:
    kg = table(entry({"process_path": ["C:\\Program Files\\Vendor\\*\\agent.exe"]}))
    assert match(alert("c:\\program files\\VENDOR\\v2\\AGENT.EXE"), kg)
    # `*` is one folder name: neither a deeper folder nor a longer file name matches.
    assert not match(alert("C:\\Program Files\\Vendor\\v2\\x\\agent.exe"), kg)
    assert not match(alert("C:\\Program Files\\Vendor\\v2\\agent.exe.bak"), kg)
    assert not match(alert("D:\\Program Files\\Vendor\\v2\\agent.exe"), kg)
    deep = table(entry({"process_path": ["C:\\Program Files\\Vendor\\**\\agent.exe"]}))
    assert match(alert("C:\\Program Files\\Vendor\\agent.exe"), deep)
    assert match(alert("C:\\Program Files\\Vendor\\a\\b\\agent.exe"), deep)


def test_device_paths_read_as_drive_c_and_say_so() -> None:
    kg = table(entry({"process_path": [MSMPENG]}))
    (found,) = match(alert("\\Device\\HarddiskVolume3" + MSMPENG[2:]), kg)
    assert found.device_path is True
    (found,) = match(alert(MSMPENG), kg)
    assert found.device_path is False
    # Dot segments never match: an EDR reports canonical paths, so one with `..` was made up.
    assert not match(alert("C:\\Users\\Public\\..\\..\\ProgramData" + MSMPENG[14:]), kg)


def test_every_criterion_must_hold() -> None:
    kg = table(
        entry(
            {
                "process_path": ["**\\powershell.exe"],
                "parent_path": ["C:\\Windows\\CCM\\CcmExec.exe"],
                "user": ["NT AUTHORITY\\SYSTEM"],
            }
        )
    )
    ps = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    (found,) = match(alert(ps, parent="C:\\Windows\\CCM\\CcmExec.exe"), kg)
    assert {m.criterion for m in found.matched} == {"process_path", "parent_path", "user"}
    assert not match(alert(ps, parent="C:\\Users\\Public\\CcmExec.exe"), kg)
    assert not match(alert(ps, parent="C:\\Windows\\CCM\\CcmExec.exe", user="j.doe", domain="CORP"), kg)
    assert not match(alert(ps), kg)  # no parent reported: the criterion does not hold


def test_signers_match_only_a_signature_the_edr_called_valid() -> None:
    kg = table(entry({"process_signer": ["AnyDesk Software GmbH"]}, kind="remote_admin_tool", tool="AnyDesk"))
    path = "C:\\Users\\bob\\Downloads\\AnyDesk.exe"
    (found,) = match(alert(path, signer="anydesk software gmbh", valid=True), kg)
    assert found.kind == "remote_admin_tool" and found.tool == "AnyDesk"
    assert not match(alert(path, signer="AnyDesk Software GmbH", valid=None), kg)
    assert not match(alert(path, signer="AnyDesk Software GmbH", valid=False), kg)
    assert not match(alert(path, signer="AnyDesk Software", valid=True), kg)


def test_command_line_shape_matches_the_whole_command_line() -> None:
    kg = table(
        entry(
            {
                "process_path": ["C:\\Program Files\\Vendor\\agent.exe"],
                "cmdline": [r"agent\.exe --scan \S+"],
            }
        )
    )
    path = "C:\\Program Files\\Vendor\\agent.exe"
    assert match(alert(path, cmdline="agent.exe --scan C:\\data"), kg)
    assert not match(alert(path, cmdline="agent.exe --scan C:\\data & calc.exe"), kg)
    assert not match(alert(path, cmdline="x agent.exe --scan C:\\data"), kg)


def test_accounts_match_every_spelling_of_one_account() -> None:
    kg = table(entry({"process_path": ["C:\\Program Files\\Vendor\\agent.exe"], "user": ["CORP\\svc-*"]}))
    path = "C:\\Program Files\\Vendor\\agent.exe"
    assert match(alert(path, user="svc-backup", domain="CORP"), kg)
    assert match(alert(path, user="CORP\\svc-backup", domain=None), kg)
    assert not match(alert(path, user="svc-backup", domain="OTHER"), kg)


def test_a_match_says_whether_its_sources_excuse_this_detection() -> None:
    kg = table(
        entry(
            {"process_path": [MSMPENG]},
            excuses={"techniques": ["T1003"], "sigma_rules": ["0d894093-71bc-43c3-8c4d-ecfc28dcf5d9"]},
        )
    )
    (sub,) = match(alert(MSMPENG, techniques=("T1003.001",)), kg)
    assert sub.excused_techniques == ("T1003.001",) and sub.covers_detection
    (other,) = match(alert(MSMPENG, techniques=("T1059.001",)), kg)
    assert other.excused_techniques == () and not other.covers_detection
    (by_rule,) = match(alert(MSMPENG, rule_uid="0D894093-71BC-43C3-8C4D-ECFC28DCF5D9"), kg)
    assert by_rule.excuses_rule and by_rule.covers_detection
    assert by_rule.sources[0].license == "Apache-2.0"


# --- what an entry may say -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "criteria",
    [
        {"process_path": ["**\\agent.exe"]},  # a bare file name, in any folder
        {"process_path": ["C:\\Users\\*\\AppData\\agent.exe"]},  # a user-writable folder
        {"process_path": ["C:\\Windows\\Temp\\agent.exe"]},  # writable folder under C:\Windows
        {"process_path": ["C:\\Windows\\*\\agent.exe"]},  # a wildcard that can reach C:\Windows\Temp
        {"process_path": ["C:\\Program Files*\\Vendor\\agent.exe"]},  # any user can create C:\Program Filesx
        {"process_path": ["C:\\Program Files\\Vendor\\*.exe"]},  # no one file name
        {"process_path": ["C:\\Windows\\System32\\rundll32.exe"]},  # a LOLBin runs whatever it is given
        {"parent_path": ["C:\\Windows\\System32\\inetsrv\\w3wp.exe"]},  # a web server runs uploaded pages
        {"process_signer": ["Microsoft Corporation"]},  # a signer alone, for benign software
        {"user": ["NT AUTHORITY\\SYSTEM"]},
        {},
    ],
)
def test_entries_an_attacker_could_satisfy_are_refused(criteria: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        entry(criteria)


def test_narrowed_lolbins_and_remote_tool_signers_are_specific() -> None:
    entry({"process_path": ["C:\\Windows\\System32\\msiexec.exe"], "cmdline": [r"msiexec\.exe /V"]})
    entry({"process_signer": ["AnyDesk Software GmbH"]}, kind="remote_admin_tool")
    entry({"parent_path": ["C:\\Windows\\CCM\\CcmExec.exe"]})


@pytest.mark.parametrize("shape", [".*", "agent.exe .*", "agent.exe .+", "x.{2,}", "(", ""])
def test_command_line_shapes_that_are_substrings_or_broken_are_refused(shape: str) -> None:
    with pytest.raises(ValidationError):
        entry({"process_path": ["C:\\Program Files\\Vendor\\agent.exe"], "cmdline": [shape]})


# --- tables --------------------------------------------------------------------------------------------


def _write(path: Path, *rows: Any) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def _row(entry_id: str = "local-1", **match_: Any) -> dict[str, Any]:
    return {
        "id": entry_id,
        "name": "Fabrikam agent",
        "kind": "benign_software",
        "match": match_ or {"process_path": ["C:\\Program Files\\Fabrikam\\agent.exe"]},
        "sources": [SOURCE],
    }


def test_loader_errors_name_the_file_the_line_and_the_field(tmp_path: Path) -> None:
    bad_json = _write(tmp_path / "a.jsonl", _row(), "{nope")
    with pytest.raises(KnownGoodError, match=r"a\.jsonl:2: not JSON"):
        KnownGoodTable.load([bad_json])
    vague = _write(tmp_path / "b.jsonl", _row(process_path=["**\\agent.exe"]))
    with pytest.raises(KnownGoodError, match=r"b\.jsonl:1: field match: not specific enough"):
        KnownGoodTable.load([vague])
    wrong_kind = _write(tmp_path / "c.jsonl", {**_row(), "kind": "trusted"})
    with pytest.raises(KnownGoodError, match=r"c\.jsonl:1: field kind:"):
        KnownGoodTable.load([wrong_kind])
    first = _write(tmp_path / "d.jsonl", _row())
    again = _write(tmp_path / "e.jsonl", "", _row())
    with pytest.raises(
        KnownGoodError, match=r"e\.jsonl:2: field id: 'local-1' already defined at .*d\.jsonl:1"
    ):
        KnownGoodTable.load([first, again])
    with pytest.raises(KnownGoodError, match=r"missing\.jsonl: cannot read"):
        load_tables([tmp_path / "missing.jsonl"])


def test_the_bundled_table_is_built_from_sigma_and_lolrmm_with_attribution() -> None:
    rows = [json.loads(line) for line in BUNDLED_KNOWN_GOOD.read_text().splitlines()]
    kg = load_tables()
    assert len(kg) == len(rows) >= 200
    kinds = {s["kind"] for row in rows for s in row["sources"]}
    assert kinds == {"sigma", "lolrmm"}
    for row in rows:
        for source in row["sources"]:
            assert source["license"] == {"sigma": "DRL-1.1", "lolrmm": "Apache-2.0"}[source["kind"]]
            assert source["title"] and source["url"].startswith("https://github.com/")
    # Remote-access software is never benign in itself, whichever source names it.
    psexesvc = [r for r in rows if r["match"].get("process_path") == ["C:\\Windows\\PSEXESVC.exe"]]
    assert psexesvc and all(r["kind"] == "remote_admin_tool" for r in psexesvc)


def test_bundled_table_tells_the_defender_engine_from_a_copy_of_it() -> None:
    engine = alert(MSMPENG, techniques=("T1003.001",))
    found = [m for m in match(engine) if m.kind == "benign_software" and m.covers_detection]
    assert found and all(s.kind == "sigma" and s.author for m in found for s in m.sources)
    assert not match(alert("C:\\Users\\Public\\MsMpEng.exe", techniques=("T1003.001",)))
    # An attacker can run the real rundll32 from System32: the table does not vouch for it.
    assert not match(alert("C:\\Windows\\System32\\rundll32.exe", techniques=("T1003.001",)))


def test_bundled_table_identifies_remote_tools_without_calling_them_benign() -> None:
    path = "C:\\Users\\bob\\Downloads\\AnyDesk.exe"
    found = match(alert(path, signer="AnyDesk Software GmbH", valid=True, techniques=("T1219",)))
    assert [(m.kind, m.tool) for m in found] == [("remote_admin_tool", "AnyDesk")]


# --- the tool ------------------------------------------------------------------------------------------


async def test_known_good_lookup_reads_the_case_alert_and_cites_sources(tmp_path: Path) -> None:
    extra = _write(tmp_path / "ours.jsonl", _row())
    settings = Settings(known_good_paths=[extra])
    ctx = make_ctx(
        alert(
            "C:\\Program Files\\Fabrikam\\agent.exe",
            parent="C:\\Windows\\System32\\services.exe",
        ),
        settings=settings,
        connectors=Connectors.from_settings(settings),
    )
    outcome = await run_tool(ctx, "known_good_lookup", {})
    assert outcome.ok, outcome.error
    assert outcome.output is not None
    assert outcome.output["entries_checked"] == len(load_tables()) + 1
    (found,) = outcome.output["matches"]
    assert found["entry_id"] == "local-1"
    assert found["sources"][0]["title"] == "written for this test"
    assert outcome.entities == ()  # it names nothing the guard could be asked to act on


async def test_known_good_lookup_takes_no_entity_from_the_model() -> None:
    outcome = await run_tool(
        make_ctx(), "known_good_lookup", {"process_path": "C:\\Windows\\CCM\\CcmExec.exe"}
    )
    assert outcome.status == "error" and outcome.error_kind == "invalid_args"
