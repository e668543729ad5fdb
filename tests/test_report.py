"""The evidence report: numbers recomputed from the ledger alone, identical from the store and from exported
transcripts, rendered for people (md, html with SVG charts, pdf checked as an image), served over HTTP."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_support import alert_variants
from soctriage.service.api.app import create_app
from soctriage.service.auth import create_key
from soctriage.service.cli import app
from soctriage.service.config import Settings
from soctriage.service.domain import GENESIS_HASH, Alert, LedgerEntry
from soctriage.service.ingest import normalize_bytes
from soctriage.service.reports import (
    EvidenceParams,
    EvidenceReport,
    build_evidence,
    evidence_from_store,
    render_report,
    source,
)
from soctriage.service.reports.layout import build_layout
from soctriage.service.store import Store
from soctriage.service.store.schema import ledger
from soctriage.service.store.transcript import read_entries
from sqlalchemy import update
from typer.testing import CliRunner

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GENERATED = datetime(2026, 4, 1, tzinfo=UTC)


def chain(case_id: str, items: list[tuple[float, str, str, dict[str, Any]]]) -> list[LedgerEntry]:
    """A correctly hashed chain: items are (seconds after T0, actor, kind, payload)."""
    entries, prev = [], GENESIS_HASH
    for seq, (offset, actor, kind, payload) in enumerate(items, start=1):
        ts = T0 + timedelta(seconds=offset)
        digest = LedgerEntry.compute_hash(case_id, seq, ts, actor, kind, payload, prev)
        entries.append(
            LedgerEntry(
                case_id=case_id,
                seq=seq,
                ts=ts,
                actor=actor,
                kind=kind,  # type: ignore[arg-type]
                payload=payload,
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    return entries


def alert(title: str, minutes_before: float, vendor: str = "CrowdStrike", **extra: Any) -> dict[str, Any]:
    return {
        "title": title,
        "time": (T0 - timedelta(minutes=minutes_before)).isoformat(),
        "source": {"vendor": vendor, "product": "Falcon", "format": "crowdstrike"},
        "severity": {"id": 4, "label": "High"},
        **extra,
    }


def status(old: str, new: str, reason: str = "r") -> dict[str, Any]:
    return {"from": old, "to": new, "reason": reason}


def verdict(disposition: str) -> dict[str, Any]:
    return {"model": "builtin", "disposition": disposition, "confidence": 0.9, "evidence": [1]}


def guard(action: str, tool: str, decision: str, rule: str, **target: Any) -> dict[str, Any]:
    return {
        "action_id": action,
        "tool": tool,
        "decision": decision,
        "rule_id": rule,
        "reason": f"because {rule}",
        "targets": [{"kind": "host", "value": "h", **target}] if target else [],
    }


H = 3600.0


@pytest.fixture
def synthetic() -> list[LedgerEntry]:
    """Four cases with known timings: contained after approval, late incident, open incident, benign close."""
    contained = chain(
        "case-a",
        [
            (0, "system", "alert_received", alert("A", 5, unmapped={"idp": {"mfa_required": False}})),
            (1, "system", "status_change", status("new", "triaging")),
            (
                2,
                "triage_agent",
                "llm_call",
                {
                    "model": "gpt-x",
                    "prompt_tokens": 100,
                    "completion_tokens": 20,
                    "total_tokens": 120,
                    "latency_ms": 800.0,
                },
            ),
            (10, "triage_agent", "verdict", verdict("true_positive")),
            (
                11,
                "guard",
                "guard_decision",
                guard("A1", "isolate_host", "needs_approval", "dc", role="domain_controller"),
            ),
            (
                11,
                "guard",
                "approval_requested",
                {
                    "action_id": "A1",
                    "tool": "isolate_host",
                    "expires_at": (T0 + timedelta(hours=1)).isoformat(),
                },
            ),
            (11, "guard", "guard_decision", guard("A2", "block_indicator", "deny", "rate_limits:hourly")),
            (
                71,
                "human:alice",
                "approval_decided",
                {"action_id": "A1", "outcome": "approved", "detail": "ok"},
            ),
            (
                72,
                "response_agent",
                "action_executed",
                {"action_id": "A1", "tool": "isolate_host", "output": {"connector": "simulator"}},
            ),
            (73, "system", "status_change", status("triaging", "contained")),
        ],
    )
    late = chain(
        "case-b",
        [
            (0, "system", "alert_received", alert("B", 1, vendor="SentinelOne")),
            (20, "triage_agent", "verdict", verdict("true_positive")),
            (21, "guard", "guard_decision", guard("A1", "disable_user", "allow", "ok", privileged=True)),
            (
                22,
                "response_agent",
                "action_executed",
                {"action_id": "A1", "tool": "disable_user", "output": {"connector": "crowdstrike"}},
            ),
            (80 * H, "system", "status_change", status("triaging", "contained")),
        ],
    )
    still_open = chain(
        "case-c",
        [
            (0, "system", "alert_received", alert("C", 2)),
            (1, "system", "note", {"event": "model_fallback", "from": "openai:x", "reason": "down"}),
            (30, "triage_agent", "verdict", verdict("true_positive")),
            (31, "guard", "status_change", status("triaging", "awaiting_approval")),
        ],
    )
    benign = chain(
        "case-d",
        [
            (0, "system", "alert_received", alert("D", 0.5)),
            (1, "system", "note", {"event": "possible_prompt_injection", "markers": ["x"]}),
            (2, "triage_agent", "verdict", verdict("false_positive")),
            (3, "system", "status_change", status("triaging", "escalated", "confidence 0.5 below 0.8")),
        ],
    )
    return [*contained, *late, *still_open, *benign]


def test_numbers_come_from_the_ledger(synthetic: list[LedgerEntry]) -> None:
    report = build_evidence(synthetic, EvidenceParams(generated_at=GENERATED, until=T0 + timedelta(days=10)))

    assert report.volume.alerts == 4
    assert report.volume.by_source == {"CrowdStrike Falcon": 3, "SentinelOne Falcon": 1}
    assert report.volume.by_disposition == {"true_positive": 3, "false_positive": 1}
    assert report.outcomes.documented == 3 and report.outcomes.share == 0.75
    assert [c.case_id for c in report.outcomes.without] == ["case-c"]

    t = report.timings
    assert (t.mttd.count, t.mttd.p50, t.mttd.max) == (4, 60.0, 300.0)
    assert (t.time_to_triage.p50, t.time_to_triage.max) == (10.0, 30.0)
    assert (t.mttc.count, t.mttc.p50, t.mttc.max) == (2, 73.0, 80 * H)
    # case-b resolved after 80 h, case-c still open 10 days later: both outside the 72 h window.
    assert (t.incidents, t.incidents_outside_window) == (3, 2)
    assert {(late.case_id, late.resolved_at is None) for late in t.outside} == {
        ("case-b", False),
        ("case-c", True),
    }

    a = report.actions
    assert {r.tool: (r.allow, r.needs_approval, r.deny, r.executed) for r in a.by_tool} == {
        "block_indicator": (0, 0, 1, 0),
        "disable_user": (1, 0, 0, 1),
        "isolate_host": (0, 1, 0, 1),
    }
    assert a.approvers == {"alice": 1} and a.approval_latency.p50 == 60.0
    assert [(r.approver, r.outcome, r.latency_s) for r in a.approvals] == [("alice", "approved", 60.0)]
    assert a.rate_limit_hits == 1 and a.denials[0].rule_id == "rate_limits:hourly"
    # The DC isolation was approved; the privileged user was disabled on policy alone.
    assert (a.sensitive_targets, a.sensitive_without_approval) == (2, 1)
    assert a.executed_by_connector == {"crowdstrike": 1, "simulator": 1}

    m = report.model
    assert (m.calls, m.total_tokens, m.fallbacks_to_builtin, m.injection_flags) == (1, 120, 1, 1)
    assert m.escalations == 1 and m.escalation_reasons == {"confidence N below N": 1}

    assert report.mfa.alerts_with_mfa_fields == 1
    assert report.mfa.rows[0].field == "idp.mfa_required"
    assert report.integrity.ok == 4 and report.integrity.failed == 0
    status_of = {r.requirement.split(" ")[0]: r.status for r in report.requirements}
    assert status_of == {"EDR": "gap", "Incident": "gap", "Audit-ready": "met", "Vendor": "gap", "MFA": "met"}


def test_period_and_window_are_parameters(synthetic: list[LedgerEntry]) -> None:
    after = build_evidence(synthetic, EvidenceParams(generated_at=GENERATED, since=T0 + timedelta(seconds=1)))
    assert after.volume.alerts == 0 and after.requirements[0].status == "no data"
    wide = build_evidence(
        synthetic,
        EvidenceParams(generated_at=GENERATED, until=T0 + timedelta(days=2), notification_window_h=100),
    )
    assert wide.timings.incidents_outside_window == 0


def test_a_tampered_chain_is_named(synthetic: list[LedgerEntry]) -> None:
    tampered = [
        e.model_copy(update={"payload": {**e.payload, "disposition": "false_positive"}})
        if (e.case_id, e.kind) == ("case-b", "verdict")
        else e
        for e in synthetic
    ]
    report = build_evidence(tampered, EvidenceParams(generated_at=GENERATED))
    [failure] = report.integrity.failures
    assert failure.case_id == "case-b" and "entry 2" in (failure.problem or "")
    assert report.requirements[2].status == "gap"


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled samples triaged once (builtin analyst), one of them approved: a realistic ledger."""
    home = tmp_path_factory.mktemp("demo") / "home"
    patch = pytest.MonkeyPatch()
    patch.setenv("SOCTRIAGE_HOME", str(home))
    patch.delenv("SOCTRIAGE_DATABASE_URL", raising=False)
    try:
        result = CliRunner().invoke(app, ["demo"])
        assert result.exit_code == 0, result.output
        with Store.open(Settings(home=home)) as store:
            waiting = store.list_cases(status="awaiting_approval")[0]
        result = CliRunner().invoke(app, ["approve", waiting.id, "A2", "--by", "alice"])
        assert result.exit_code in (0, 1), result.output
        result = CliRunner().invoke(app, ["ledger", "checkpoint"])
        assert result.exit_code == 0, result.output
    finally:
        patch.undo()
    return home


@pytest.fixture
def home(demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(demo_home, copy)
    monkeypatch.setenv("SOCTRIAGE_HOME", str(copy))
    monkeypatch.delenv("SOCTRIAGE_DATABASE_URL", raising=False)
    return copy


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_report_rebuilt_from_exported_ledgers_is_identical(home: Path) -> None:
    result = cli("report", "evidence", "--format", "json", "--tenant", "default")
    assert result.exit_code == 0, result.output
    from_store = EvidenceReport.model_validate_json(result.stdout)
    assert from_store.volume.alerts == 8 and from_store.integrity.ok == 8
    cited = from_store.checkpoint
    assert cited is not None and cited.signature_check == "verified" and cited.covered == 8
    assert cited.note.startswith(cited.origin + "\n8\n") and cited.signature in cited.note
    provenance = from_store.provenance
    assert provenance is not None and provenance.policy_sha256 and "verdict" in provenance.prompts

    with Store.open(Settings(home=home)) as store:
        case_ids = sorted(c.id for c in store.list_cases(limit=1000))
    exported = ""
    for case_id in case_ids:
        out = cli("ledger", "export", case_id, "--format", "jsonl")
        assert out.exit_code == 0
        exported += out.stdout
    params = EvidenceParams(generated_at=from_store.generated_at, tenant="default")
    rebuilt = build_evidence(read_entries(exported.splitlines()), params, checkpoint=cited)
    assert rebuilt == from_store.model_copy(update={"provenance": None})
    rebuilt = rebuilt.model_copy(update={"provenance": provenance})
    assert render_report(rebuilt, "md") == render_report(from_store, "md")


def test_human_formats_and_pdf_image(home: Path, tmp_path: Path) -> None:
    md = cli("report", "evidence", "--format", "md")
    assert md.exit_code == 0 and "## Ledger integrity" in md.stdout and "| Requirement |" in md.stdout
    html = cli(
        "report", "evidence", "--format", "html", "--since", "2000-01-01", "--out", str(tmp_path / "r.html")
    )
    assert html.exit_code == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 2 and "Alert volume per day" in page and "Time to verdict" in page

    pdf = tmp_path / "r.pdf"
    assert cli("report", "evidence", "--format", "pdf", "--out", str(pdf)).exit_code == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert_renders(pdf, tmp_path / "report")
    assert "all tenants, all alerts received; generated" in md.stdout
    assert "Elastic Security" in md.stdout and "Elastic Elastic" not in md.stdout
    assert "## Signed checkpoint" in md.stdout and "## Software and policy in force" in md.stdout

    # No word of a table is broken across lines: every header word and every case id (a cell of its own)
    # comes out of the PDF whole.
    report = EvidenceReport.model_validate_json(cli("report", "evidence", "--format", "json").stdout)
    words = set(pdf_text(pdf).split())
    tables = [table for section in build_layout(report).sections for table in section.tables if table.rows]
    headers = {word for table in tables for header in table.headers for word in header.split()}
    assert headers and headers <= words, headers - words
    case_ids = {c.case_id for c in report.integrity.heads}
    assert case_ids <= words, case_ids - words


def pdf_text(pdf: Path) -> str:
    pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 (test extra) reads PDFs")
    document = pdfium.PdfDocument(str(pdf))
    try:
        return "\n".join(document[n].get_textpage().get_text_range() for n in range(len(document)))
    finally:
        document.close()


def assert_renders(pdf: Path, stem: Path) -> None:
    """Rasterise every page (pypdfium2); a page that renders blank or fails is a broken PDF."""
    pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 (test extra) renders PDFs to images")
    document = pdfium.PdfDocument(str(pdf))
    try:
        assert len(document) >= 2
        for number in range(len(document)):
            image = document[number].render(scale=1).to_pil().convert("L")
            image.save(f"{stem}-{number}.png")
            dark = sum(image.histogram()[:128])
            assert dark > 500, f"page {number + 1} is blank"
    finally:
        document.close()


def test_case_pdf_export(home: Path, tmp_path: Path) -> None:
    with Store.open(Settings(home=home)) as store:
        case_id = store.list_cases(status="contained")[0].id
    pdf = tmp_path / "case.pdf"
    result = cli("ledger", "export", case_id, "--format", "pdf", "--out", str(pdf))
    assert result.exit_code == 0, result.output
    assert_renders(pdf, tmp_path / "case")
    assert cli("ledger", "export", case_id, "--format", "pdf").exit_code == 2
    assert cli("ledger", "export", "case-nope", "--format", "pdf", "--out", str(pdf)).exit_code == 2


def test_bad_input_exits_2_naming_the_option(home: Path) -> None:
    for args, named in [
        (["--since", "March"], "--since"),
        (["--format", "docx"], "--format"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "--since"),
    ]:
        result = cli("report", "evidence", *args)
        assert result.exit_code == 2 and named in result.stderr


def test_tampering_fails_the_report_and_previous_results_are_carried(home: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    assert cli("report", "evidence", "--format", "json", "--out", str(first)).exit_code == 0
    carried = cli("report", "evidence", "--format", "json", "--verify-from", str(first))
    report = EvidenceReport.model_validate_json(carried.stdout)
    assert report.integrity.method == "carried_forward" and report.integrity.ok == 8

    with Store.open(Settings(home=home)) as store:
        case_id = store.list_cases(status="contained")[0].id
        store.append(case_id, "human:bob", "feedback", {"agree": True})
        with store.engine.begin() as conn:
            conn.execute(
                update(ledger).where(ledger.c.case_id == case_id, ledger.c.seq == 2).values(actor="mallory")
            )
    carried = EvidenceReport.model_validate_json(
        cli("report", "evidence", "--format", "json", "--verify-from", str(first)).stdout
    )
    assert (carried.integrity.ok, carried.integrity.unverified) == (7, 1)
    failed = cli("report", "evidence", "--format", "json")
    assert failed.exit_code == 1
    [failure] = EvidenceReport.model_validate_json(failed.stdout).integrity.failures
    assert failure.case_id == case_id and "entry 2" in (failure.problem or "")


def test_chains_verified_by_worker_processes_give_the_inline_answer(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large scope is re-verified in worker processes beside the report's pass; forcing that path on a small
    ledger with one edited entry must give the same report, failure and all, as verifying inline."""
    with Store.open(Settings(home=home)) as store:
        case_id = store.list_cases(status="contained")[0].id
        with store.engine.begin() as conn:
            conn.execute(
                update(ledger).where(ledger.c.case_id == case_id, ledger.c.seq == 3).values(actor="mallory")
            )
        params = EvidenceParams(generated_at=GENERATED)
        inline = evidence_from_store(store, params)
        monkeypatch.setattr(source, "PARALLEL_VERIFY_MIN_CASES", 1)
        parallel = evidence_from_store(store, params, cores=source.PARALLEL_VERIFY_MIN_CORES)
    assert parallel == inline
    assert (parallel.integrity.ok, parallel.integrity.failed) == (7, 1)
    [failure] = parallel.integrity.failures
    assert failure.case_id == case_id and "entry 3" in (failure.problem or "")


def test_chains_are_verified_in_worker_processes_only_beyond_two_usable_cores(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On two cores the workers cost far more CPU than verifying inline and the report is no sooner: a large
    scope is verified by workers only where more cores are usable (the process's affinity, not the machine's)."""
    pools: list[int] = []
    pool = source.ProcessPoolExecutor
    monkeypatch.setattr(
        source, "ProcessPoolExecutor", lambda workers, **kw: pools.append(workers) or pool(workers, **kw)
    )
    monkeypatch.setattr(source, "PARALLEL_VERIFY_MIN_CASES", 1)
    with Store.open(Settings(home=home)) as store:
        params = EvidenceParams(generated_at=GENERATED)
        inline = evidence_from_store(store, params, cores=1)
        assert evidence_from_store(store, params, cores=2) == inline and pools == []
        monkeypatch.setattr(source.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
        monkeypatch.setattr(source.os, "cpu_count", lambda: 64)
        assert source.usable_cores() == 2
        assert evidence_from_store(store, params) == inline and pools == []
        assert evidence_from_store(store, params, cores=3) == inline
    assert pools == [3]
    assert not source.verify_in_workers(source.PARALLEL_VERIFY_MIN_CASES - 1, 64)


def _store_alerts(store: Store, tenant: str, count: int, offset: int) -> None:
    for data in list(alert_variants(offset + count))[offset:]:
        [item] = [a for a in normalize_bytes(data, "x") if isinstance(a, Alert)]
        store.create_case(item, tenant)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    token = "report-admin-token"
    settings = Settings(
        home=tmp_path / "home", api_keys=[f"root:acme:admin:{hashlib.sha256(token.encode()).hexdigest()}"]
    )
    keys = {"acme-admin": token}
    with Store.open(settings) as store:
        _store_alerts(store, "acme", 3, 0)
        _store_alerts(store, "globex", 2, 3)
        keys["acme-viewer"] = create_key(store, "acme", "viewer")[1]
        keys["acme-analyst"] = create_key(store, "acme", "analyst")[1]
        keys["globex-analyst"] = create_key(store, "globex", "analyst")[1]
    with TestClient(create_app(settings, auth_enabled=True)) as test_client:
        yield test_client, keys


def test_api_reports_own_tenant_only(client: tuple[TestClient, dict[str, str]]) -> None:
    http, keys = client

    def get(key: str, **params: str) -> Any:
        return http.get(
            "/v1/reports/evidence", params=params, headers={"Authorization": f"Bearer {keys[key]}"}
        )

    acme = get("acme-analyst")
    assert acme.status_code == 200
    body = acme.json()
    assert body["tenant"] == "acme" and body["volume"]["alerts"] == 3 and body["integrity"]["ok"] == 3
    assert get("globex-analyst").json()["volume"]["alerts"] == 2
    assert get("acme-admin", tenant="acme").status_code == 200
    assert get("acme-analyst", tenant="globex").status_code == 403
    assert get("acme-viewer").status_code == 403
    assert http.get("/v1/reports/evidence").status_code == 401
    bad = get("acme-analyst", since="yesterday")
    assert bad.status_code == 422 and "since" in json.dumps(bad.json())
    pdf = get("acme-analyst", format="pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert "<svg" in get("acme-analyst", format="html").text


@pytest.mark.postgres
def test_postgres_report_matches_export(pg_url: str) -> None:
    settings = Settings(database_url=pg_url)
    with Store.open(settings) as store:
        _store_alerts(store, "acme", 3, 0)
        for case in store.list_cases():
            store.set_status(case.id, "triaging", "system", "triage")
            store.append(case.id, "triage_agent", "verdict", verdict("true_positive"))
            store.set_status(case.id, "contained", "system", "contained")
        params = EvidenceParams(generated_at=GENERATED, tenant="acme")
        report = evidence_from_store(store, params)
        with pytest.MonkeyPatch.context() as patch:  # the worker-process verification, on PostgreSQL too
            patch.setattr(source, "PARALLEL_VERIFY_MIN_CASES", 1)
            assert evidence_from_store(store, params, cores=source.PARALLEL_VERIFY_MIN_CORES) == report
        entries = [
            e for case in sorted(store.list_cases(), key=lambda c: c.id) for e in store.entries(case.id)
        ]
    assert report.volume.alerts == 3 and report.integrity.ok == 3 and report.timings.mttc.count == 3
    assert build_evidence(entries, params) == report
