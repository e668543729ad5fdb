"""The known-good table checks an alert only against the entries filed under its own file names and signers:
the matches are the ones a check of every entry gives, for paths in any case, wildcards, signers, and paths
with letters that match ASCII ones only case-insensitively."""

from __future__ import annotations

from typing import Any

import pytest
from soctriage.service.domain import Alert, FileInfo, ParentProcess, Process, User
from soctriage.tools.known_good import KnownGoodTable, load_tables
from tools_support import make_alert


def _instance(glob: str, upper: bool) -> str:
    """A path the glob matches (wildcards filled in), upper-cased when asked."""
    sep = "/" if glob.startswith("/") else "\\"
    path = glob.replace("**", f"Sub{sep}Dir").replace("*", "Xy").replace("?", "Q")
    return path.upper() if upper else path


def _alerts(table: KnownGoodTable) -> list[Alert]:
    alerts = []
    for number, entry in enumerate(table.entries.values()):
        crit, upper = entry.match, number % 2 == 1
        process_path = _instance(crit.process_path[0], upper) if crit.process_path else None
        parent_path = _instance(crit.parent_path[0], upper) if crit.parent_path else None
        signer = crit.process_signer[0].upper() if crit.process_signer else None
        alerts.append(
            make_alert(
                process=Process(
                    path=process_path or "C:\\Windows\\System32\\cmd.exe",
                    signer=signer,
                    signature_valid=True if signer else None,
                    parent=ParentProcess(path=parent_path) if parent_path else None,
                ),
                file=FileInfo(path=_instance(crit.file_path[0], upper)) if crit.file_path else None,
                user=User(name="SYSTEM", domain="NT AUTHORITY"),
            )
        )
    # The Kelvin sign and the long s match "k" and "s" case-insensitively: such paths are checked in full.
    for path in ("C:\\Windows\\System32\\\u212aernel32.exe", "C:\\Windows\\ſystem32\\svchoſt.exe"):
        alerts.append(make_alert(process=Process(path=path, parent=ParentProcess(path=path))))
    return alerts


def _every_entry(table: KnownGoodTable, subject: Any) -> list[Any]:
    return list(table.entries.values())


def test_indexed_matches_are_a_full_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    table = load_tables()
    alerts = _alerts(table)
    indexed = [KnownGoodTable(table.entries.values()).match(a) for a in alerts]
    monkeypatch.setattr(KnownGoodTable, "_candidates", _every_entry)
    full = [KnownGoodTable(table.entries.values()).match(a) for a in alerts]
    assert indexed == full
    # The alerts exercise the table: most entries without a command-line shape match their own alert.
    assert sum(bool(found) for found in indexed) > len(table) // 2
