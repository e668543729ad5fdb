"""tools/data/build_known_good.py, run as a maintainer runs it, over small upstream-shaped trees written here:
which sigma filters and LOLRMM entries become known-good entries, and which are left out."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from soctriage.tools.known_good import KnownGoodTable

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "data" / "build_known_good.py"

LSASS_RULE = """
title: LSASS Access From Uncommon Program
id: 11111111-2222-3333-4444-555555555555
status: test
author: Test Author
tags: [attack.credential-access, attack.t1003.001]
logsource: {category: process_access, product: windows}
detection:
    selection:
        TargetImage|endswith: '\\lsass.exe'
    filter_main_defender:
        SourceImage|startswith: 'C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\'
        SourceImage|endswith: '\\MsMpEng.exe'
    filter_optional_bare_name:
        SourceImage|endswith: '\\backup-agent.exe'
    filter_optional_lolbin:
        SourceImage: 'C:\\Windows\\System32\\rundll32.exe'
    filter_optional_list:
        SourceImage|endswith:
            - ':\\Windows\\Sysmon64.exe'
            - ':\\Windows\\System32\\taskmgr.exe'
    filter_optional_granted:
        SourceImage: 'C:\\Program Files\\Vendor\\agent.exe'
        GrantedAccess: '0x1410'
    condition: selection and not 1 of filter_main_* and not 1 of filter_optional_*
"""

CHILD_RULE = """
title: PowerShell Started By A Service
id: 66666666-7777-8888-9999-000000000000
status: test
author: Another Author
tags: [attack.execution, attack.t1059.001]
logsource: {category: process_creation, product: windows}
detection:
    selection_img:
        - Image|endswith: '\\powershell.exe'
        - OriginalFileName: 'PowerShell.EXE'
    selection_cli:
        CommandLine|contains: ' -ExecutionPolicy Bypass '
    filter_main_ccm:
        ParentImage: 'C:\\Windows\\CCM\\CcmExec.exe'
    filter_main_any_parent:
        ParentImage|endswith: '\\services.exe'
    filter_optional_cmdline:
        ParentImage: 'C:\\Windows\\CCM\\CcmExec.exe'
        CommandLine|contains: 'SystemTemp'
    condition: all of selection_* and not 1 of filter_*
"""

POSITIVE_FILTER_RULE = """
title: Uses A Filter Positively
id: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
status: test
tags: [attack.t1105]
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\\curl.exe'
    filter_vendor:
        ParentImage: 'C:\\Program Files\\Vendor\\updater.exe'
    condition: selection and filter_vendor
"""

LOLRMM_TOOL = """
Name: ExampleDesk
Author: Test Author
Details:
    Website: https://exampledesk.example
    InstallationPaths:
        - 'C:\\Program Files\\ExampleDesk\\ExampleDesk.exe'
        - '*\\ExampleDesk.exe'
        - '%APPDATA%\\ExampleDesk\\ExampleDesk.exe'
        - 'C:\\Program Files (x86)\\ExampleDesk Client (Random)\\exampledesk-svc.exe'
Artifacts:
    Disk:
        - File: 'C:\\ProgramData\\ExampleDesk\\service.log'
CodeSigning:
    certificates:
        - signer_name: ExampleDesk Software Ltd
        - signer_name: Microsoft Corporation
        - signer_name: Unrelated Widgets Inc
"""


def tree(root: Path) -> tuple[Path, Path]:
    sigma, lolrmm = root / "sigma", root / "LOLRMM"
    for name, text in (
        ("lsass.yml", LSASS_RULE),
        ("child.yml", CHILD_RULE),
        ("positive.yml", POSITIVE_FILTER_RULE),
    ):
        path = sigma / "rules" / "windows" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (lolrmm / "yaml").mkdir(parents=True)
    (lolrmm / "yaml" / "exampledesk.yaml").write_text(textwrap.dedent(LOLRMM_TOOL))
    return sigma, lolrmm


Built = tuple[subprocess.CompletedProcess[str], list[dict], Path]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One build shared by the tests: the script is a separate process, and starting one takes seconds."""
    tmp_path = tmp_path_factory.mktemp("build")
    sigma, lolrmm = tree(tmp_path)
    out = tmp_path / "known_good.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--sigma",
            str(sigma),
            "--lolrmm",
            str(lolrmm),
            "--sigma-revision",
            "abc123",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return result, rows, tmp_path


def test_build_keeps_specific_filters_and_drops_what_an_attacker_could_satisfy(built: Built) -> None:
    result, rows, _ = built
    assert result.returncode == 0, result.stderr
    by_path = {
        tuple(r["match"].get("process_path", ())): r for r in rows if r["sources"][0]["kind"] == "sigma"
    }
    defender = by_path[("C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\**\\MsMpEng.exe",)]
    assert defender["kind"] == "benign_software"
    assert defender["excuses"] == {
        "techniques": ["T1003.001"],
        "sigma_rules": ["11111111-2222-3333-4444-555555555555"],
    }
    (source,) = defender["sources"]
    assert source == {
        "kind": "sigma",
        "id": "11111111-2222-3333-4444-555555555555",
        "title": "LSASS Access From Uncommon Program",
        "author": "Test Author",
        "license": "DRL-1.1",
        "url": "https://github.com/SigmaHQ/sigma/blob/abc123/rules/windows/lsass.yml",
        "detail": "filter_main_defender",
        "revision": "abc123",
    }
    # `:\\` (any drive) is read as C:, and each program of a list is judged on its own.
    assert ("C:\\Windows\\Sysmon64.exe",) in by_path
    left_out = {
        ("**\\backup-agent.exe",),  # a bare name
        ("C:\\Windows\\System32\\rundll32.exe",),  # a LOLBin, not narrowed
        ("C:\\Windows\\System32\\taskmgr.exe",),  # dumps LSASS on request
        ("C:\\Program Files\\Vendor\\agent.exe",),  # GrantedAccess cannot be kept, so the filter cannot
        ("C:\\Program Files\\Vendor\\updater.exe",),  # a filter the condition uses positively
    }
    assert not left_out & set(by_path)
    assert not any("updater.exe" in json.dumps(r) for r in rows)


def test_a_parent_filter_is_narrowed_to_the_child_the_rule_selects(built: Built) -> None:
    _, rows, _ = built
    ccm = [r for r in rows if r["match"].get("parent_path") == ["C:\\Windows\\CCM\\CcmExec.exe"]]
    assert [r["match"]["process_path"] for r in ccm] == [["**\\PowerShell.EXE", "**\\powershell.exe"]]
    assert ccm[0]["excuses"]["techniques"] == ["T1059.001"]
    # "any services.exe" is a bare name; a contains on the command line would widen the filter.
    assert not [r for r in rows if "services.exe" in json.dumps(r["match"])]
    assert not [r for r in rows if "cmdline" in r["match"]]


def test_lolrmm_entries_identify_tools_and_never_call_them_benign(built: Built) -> None:
    _, rows, _ = built
    tools = [r for r in rows if r["sources"][0]["kind"] == "lolrmm"]
    assert {r["kind"] for r in tools} == {"remote_admin_tool"}
    paths = next(r for r in tools if "process_path" in r["match"])
    assert paths["match"]["process_path"] == [
        "C:\\Program Files (x86)\\ExampleDesk Client (*)\\exampledesk-svc.exe",
        "C:\\Program Files\\ExampleDesk\\ExampleDesk.exe",
    ]
    signers = [r["match"]["process_signer"] for r in tools if "process_signer" in r["match"]]
    assert signers == [["ExampleDesk Software Ltd"]]  # not Microsoft, not a signer unrelated to the tool
    assert paths["sources"][0]["license"] == "Apache-2.0"


def test_the_written_table_loads_and_a_bad_checkout_is_refused(built: Built, tmp_path: Path) -> None:
    result, rows, folder = built
    assert len(KnownGoodTable.load([folder / "known_good.jsonl"])) == len(rows)
    assert "entries" in result.stdout and "left out" in result.stdout
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--sigma", str(tmp_path), "--lolrmm", str(folder / "LOLRMM")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "no rules/ folder" in bad.stderr
