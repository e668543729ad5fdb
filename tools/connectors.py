"""The bundle of everything a tool can reach (`Connectors`), built once per process from Settings: the
response connector (tools/response_connectors.py), threat intel, the inventory, ATT&CK, LOLBins, the
known-good table, the organisation context and the retrieval index (tools/retrieval.py, opened on first
use)."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx2
from soctriage.service.config import Settings
from soctriage.tools.attack import AttackCatalog
from soctriage.tools.intel import BUNDLED_INTEL, AbuseIPDBClient, IntelService, LocalIntel, VirusTotalClient
from soctriage.tools.inventory import BUNDLED_INVENTORY, Inventory
from soctriage.tools.known_good import KnownGoodTable, load_tables
from soctriage.tools.lolbins import LolbinCatalog
from soctriage.tools.org_context import OrgContext
from soctriage.tools.response_connectors import (
    ResponseConnector,
    SimulatorConnector,
    build_response_connector,
)
from soctriage.tools.retrieval import LazyIndex


@dataclasses.dataclass(frozen=True)
class Connectors:
    """Everything tools reach outside their arguments. Build once per process and share across cases, so the
    connectors' idempotency memory and token caches are shared too."""

    response: ResponseConnector
    ticketing: ResponseConnector
    intel: IntelService
    inventory: Inventory
    attack: AttackCatalog
    lolbins: LolbinCatalog
    known_good: KnownGoodTable
    org_context: OrgContext
    retrieval: LazyIndex

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        retry_wait_s: float = 0.5,
        retrieval: LazyIndex | None = None,
    ) -> Connectors:
        http: dict[str, Any] = {
            "timeout_s": settings.connector_timeout_s,
            "retries": settings.connector_retries,
            "retry_wait_s": retry_wait_s,
            "transport": transport,
        }
        vt = settings.virustotal_api_key
        abuse = settings.abuseipdb_api_key
        intel = IntelService(
            LocalIntel.from_paths([BUNDLED_INTEL, *settings.intel_paths]),
            VirusTotalClient(vt.get_secret_value(), settings.virustotal_base_url, **http) if vt else None,
            AbuseIPDBClient(abuse.get_secret_value(), settings.abuseipdb_base_url, **http) if abuse else None,
        )
        simulator = SimulatorConnector()
        known_good = load_tables(settings.known_good_paths)
        return cls(
            response=build_response_connector(settings, http) or simulator,
            # No ITSM connector exists yet: tickets are recorded by the simulator (and in the case ledger).
            ticketing=simulator,
            intel=intel,
            inventory=Inventory.load(settings.inventory_path or BUNDLED_INVENTORY),
            attack=AttackCatalog.load(settings.attack_data_path),
            lolbins=LolbinCatalog.load(settings.lolbas_path),
            known_good=known_good,
            org_context=OrgContext.load(settings.context_path, known_good)
            if settings.context_path
            else OrgContext(),
            retrieval=retrieval or LazyIndex(settings),
        )
