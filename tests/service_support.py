"""Helpers for the service tests: distinct alerts made from the bundled samples, and real `soctriage serve` /
`soctriage worker` processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2
from soctriage.service.domain import Alert
from soctriage.service.ingest import normalize_bytes

SAMPLES = resources.files("soctriage.service").joinpath("samples")
SOCTRIAGE = [sys.executable, "-m", "soctriage.service.cli"]


def sample_bytes(name: str) -> bytes:
    return SAMPLES.joinpath(name).read_bytes()


def alert_variants(count: int, names: list[str] | None = None) -> Iterator[bytes]:
    """`count` distinct vendor alerts: the samples with their vendor alert id suffixed by a number."""
    names = names or sorted(p.name for p in SAMPLES.iterdir() if p.name.endswith(".json"))
    bases = []
    for name in names:
        data = sample_bytes(name)
        [alert] = [a for a in normalize_bytes(data, name) if isinstance(a, Alert)]
        assert alert.source.vendor_alert_id, name
        bases.append((data.decode(), alert.source.vendor_alert_id))
    for number in range(count):
        text, vendor_id = bases[number % len(bases)]
        yield text.replace(vendor_id, f"{vendor_id}-v{number}").encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOCTRIAGE_", "OPENAI_"))}
    env.update({"SOCTRIAGE_HOME": str(home), "SOCTRIAGE_LOG_FORMAT": "json", **extra})
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen([*SOCTRIAGE, *args], env=env, stdout=handle, stderr=subprocess.STDOUT)


def wait_healthy(base_url: str, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    # Generous: on a loaded 2-core machine importing the graph stack alone can take half a minute.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            if httpx2.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base_url} did not become healthy in {timeout_s}s")


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app (e.g. the scripted model) on a loopback port from a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
