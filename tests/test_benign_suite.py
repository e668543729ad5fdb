"""The benign-heavy eval suite: its size and spread, that every alert normalizes through `soctriage normalize`,
its organisation files, and that nothing in them vouches for a malicious look-alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from soctriage.evals.suite import Suite, SuiteError, load_suite
from soctriage.service.config import Settings
from soctriage.service.domain import ALERT_FORMATS, Alert
from soctriage.service.ingest import normalize_bytes
from soctriage.tools import Connectors


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite("benign")


def malicious(suite: Suite) -> list[str]:
    return [c.id for c in suite.cases if c.expected.label == "true_positive"]


def test_suite_is_benign_heavy_spread_over_six_vendors_and_every_case_says_why(suite: Suite) -> None:
    labels = Counter("malicious" if c.expected.label == "true_positive" else "benign" for c in suite.cases)
    assert labels["benign"] >= 60 and labels["malicious"] >= 30
    assert all(
        set(c.expected.acceptable) <= {"benign_true_positive", "false_positive"}
        for c in suite.cases
        if c.expected.label != "true_positive"
    )
    assert all(c.reason and c.note for c in suite.cases)
    by_vendor: Counter[tuple[str, str]] = Counter()
    for case in suite.cases:
        (alert,) = list(normalize_bytes(case.alert_bytes(), case.id))
        assert isinstance(alert, Alert), f"{case.id}: {alert}"
        by_vendor[(alert.source.format, case.expected.label == "true_positive")] += 1
    for fmt in ALERT_FORMATS:
        assert by_vendor[(fmt, False)] >= 5 and by_vendor[(fmt, True)] >= 4, fmt


def test_every_case_normalizes_through_the_cli(suite: Suite, tmp_path: Path) -> None:
    path = tmp_path / "benign.jsonl"
    path.write_text("".join(json.dumps(c.alert) + "\n" for c in suite.cases))
    result = subprocess.run(
        [sys.executable, "-m", "soctriage.service.cli", "normalize", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "SOCTRIAGE_DATABASE_URL"}
        | {"SOCTRIAGE_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 0, result.stderr
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(alerts) == len(suite.cases)
    assert len({a["id"] for a in alerts}) == len(alerts)


def test_the_organisation_never_vouches_for_a_look_alike(suite: Suite) -> None:
    """Look-alikes differ from their benign twins only in facts their author cannot fake; the suite's own
    context and the known-good table must see that difference."""
    settings = suite.settings(Settings())
    assert settings.context_path is not None and settings.context_path.name == "context.yaml"
    connectors = Connectors.from_settings(settings)
    sanctioned = 0
    for case in suite.cases:
        (alert,) = list(normalize_bytes(case.alert_bytes(), case.id))
        assert isinstance(alert, Alert)
        known = connectors.known_good.match(alert)
        report = connectors.org_context.evaluate(alert, known)
        if case.expected.label == "true_positive":
            assert not report.applies, f"{case.id}: sanctioned by {[h.entry_id for h in report.applies]}"
            assert not [m for m in known if m.kind == "benign_software"], case.id
        else:
            sanctioned += bool(report.applies)
    assert sanctioned >= 40  # most benign alerts are explained by the organisation's own context


def test_a_suite_environment_file_that_is_missing_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "cases.jsonl").write_text("")
    (tmp_path / "suite.yaml").write_text(
        "name: x\ncases: cases.jsonl\nenvironment: {context: nowhere.yaml}\n"
    )
    with pytest.raises(
        SuiteError, match=r"suite\.yaml: field environment\.context: .*nowhere\.yaml is missing"
    ):
        load_suite(str(tmp_path))
