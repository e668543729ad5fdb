"""A store for the console tests: triaged sample cases of tenant acme, keys for every role, and helpers to read
what a console page hands the browser (its CSRF token)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from soctriage.agents.run import Triager
from soctriage.service.auth import create_key
from soctriage.service.cli_service import BackgroundWorker
from soctriage.service.config import Settings
from soctriage.service.store import Store
from test_graph import sample

TENANT = "acme"
LSASS = "crowdstrike-lsass-dump.json"  # true positive on DC01: isolation waits for an approver
SUDO = "wazuh-admin-sudo-benign.json"  # inconclusive, escalated
BENIGN = "crowdstrike-test-detection.json"  # closed as benign
ROLES = ("viewer", "analyst", "approver", "admin")


@dataclass(frozen=True)
class ConsoleStore:
    settings: Settings
    keys: dict[str, str]  # role (or "globex") -> API key
    cases: dict[str, str]  # sample name -> case id


def console_store(home: Path, **extra: object) -> ConsoleStore:
    settings = Settings(home=home, tenant=TENANT, job_lease_s=5, decision_wait_s=15, **extra)  # type: ignore[arg-type]

    async def triage() -> dict[str, str]:
        async with Triager(settings) as triager:
            return {
                name: (await triager.triage(sample(name), tenant=TENANT)).case_id
                for name in (BENIGN, SUDO, LSASS)
            }

    # On a thread of its own: a sync Playwright browser keeps an event loop running on the test's thread.
    with ThreadPoolExecutor(1) as pool:
        cases = pool.submit(asyncio.run, triage()).result()
    keys = {}
    with Store.open(settings) as store:
        for role in ROLES:
            keys[role] = create_key(store, TENANT, role, f"{role}-user")[1]
        keys["globex"] = create_key(store, "globex", "admin", "globex-admin")[1]
    return ConsoleStore(settings, keys, cases)


@contextmanager
def workers(settings: Settings, concurrency: int = 2) -> Iterator[None]:
    """The in-process queue workers `serve` runs, for decisions made through the console."""
    worker = BackgroundWorker(settings, concurrency)
    worker.start()
    try:
        yield
    finally:
        worker.stop()


def csrf_of(html: str) -> str:
    found = re.search(r'data-csrf="([^"]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)
