"""`soctriage serve`, `soctriage worker` and `soctriage keys`: the service's commands (DESIGN §7)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from soctriage.service import event_loop
from soctriage.service.cli_common import echo_json, open_store, render_table
from soctriage.service.config import Settings
from soctriage.service.store import store_label

if TYPE_CHECKING:
    from soctriage.tools.retrieval import LazyIndex

log = logging.getLogger("soctriage.serve")

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.add_typer(keys_app, name="keys")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_enabled(settings: Settings, host: str) -> bool:
    return settings.auth == "on" or (settings.auth == "auto" and not is_loopback(host))


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            help="triage jobs run in this process at once (default SOCTRIAGE_WORKER_CONCURRENCY);"
            " 0 serves the API only, for `soctriage worker` processes to do the work"
        ),
    ] = None,
) -> None:
    """Run the HTTP API (OpenAPI at /docs) and, unless --workers 0, in-process queue workers."""
    import uvicorn
    from soctriage.service.api.app import create_app
    from soctriage.service.api.logs import configure_logging
    from soctriage.service.auth import KeyConfigError, configured_keys
    from soctriage.tools.retrieval import LazyIndex

    settings = Settings()
    configure_logging(settings.log_format)
    # Through the logger, not a bare line: a service's stderr is one log line per event, in its log format.
    log.info("store", extra={"store": store_label(settings.sqlalchemy_url)})
    try:
        configured_keys(settings)
    except KeyConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if workers is not None and workers < 0:
        typer.echo("--workers: must be 0 or more", err=True)
        raise typer.Exit(2)
    secured = auth_enabled(settings, host)
    if not secured and not is_loopback(host):
        log.warning("authentication is OFF on a non-loopback address", extra={"host": host})
    concurrency = settings.worker_concurrency if workers is None else workers
    # Open everything once before the API and the worker thread both do: two first opens of a new SQLite file at
    # once can fail switching it to WAL, and a setting that cannot be used (policy, intel, model) is then one
    # line and exit 2 from the command group, not a traceback in a failed uvicorn startup.
    event_loop.run(_open_once(settings))
    # One retrieval index for the API and the in-process workers: the embedding model is loaded once.
    index = LazyIndex(settings)
    background = BackgroundWorker(settings, concurrency, index) if concurrency else None
    if background is not None:
        background.start()
    log.info("serving", extra={"host": host, "port": port, "auth": secured, "workers": concurrency})
    try:
        uvicorn.run(
            create_app(settings, auth_enabled=secured, index=index),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if background is not None:
            background.stop()


async def _open_once(settings: Settings) -> None:
    from soctriage.agents.run import Triager

    async with Triager(settings):
        pass


class BackgroundWorker(threading.Thread):
    """Queue workers on their own thread and event loop: the graph's synchronous ledger writes then never stall
    the API's loop."""

    def __init__(self, settings: Settings, concurrency: int, index: LazyIndex | None = None) -> None:
        super().__init__(name="soctriage-worker", daemon=True)
        self.settings = settings
        self.concurrency = concurrency
        self.index = index
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()

    def run(self) -> None:
        try:
            event_loop.run(self._main())
        except Exception:
            log.exception("in-process workers stopped on an error")

    async def _main(self) -> None:
        from soctriage.service.worker import run_worker

        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await run_worker(self.settings, self.concurrency, self._stop_event, index=self.index)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._ready.wait(timeout=5)
        if self._loop is not None and self._stop_event is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(timeout=timeout_s)


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="jobs run at once (default SOCTRIAGE_WORKER_CONCURRENCY)")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve this worker's Prometheus metrics on 127.0.0.1:PORT")
    ] = None,
) -> None:
    """Run a queue worker (scale-out: any number of them, on any machines sharing the PostgreSQL store)."""
    from soctriage.service.api.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_format)
    log.info("store", extra={"store": store_label(settings.sqlalchemy_url)})
    if concurrency is not None and concurrency < 1:
        typer.echo("--concurrency: must be 1 or more", err=True)
        raise typer.Exit(2)
    if metrics_port is not None:
        from prometheus_client import start_http_server
        from soctriage.service import metrics
        from soctriage.service.queue import open_queue
        from soctriage.service.store import Store

        store = Store.open(settings)
        metrics.track_store(store, open_queue(settings, store).depth)
        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.REGISTRY)
    event_loop.run(_work(settings, concurrency or settings.worker_concurrency))


async def _work(settings: Settings, concurrency: int) -> None:
    from soctriage.service.worker import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, concurrency, stop)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="the tenant whose cases the key may see")],
    role: Annotated[
        str,
        typer.Option(help="viewer, analyst, approver or admin of the tenant; operator reads /metrics only"),
    ],
    name: Annotated[str | None, typer.Option(help="who holds it (recorded in ledgers as human:NAME)")] = None,
) -> None:
    """Create an API key and print it once; only its sha256 is stored."""
    from soctriage.service.auth import KeyConfigError, create_key

    with open_store(Settings(), create=True) as store:
        try:
            principal, token = create_key(store, tenant, role, name)
        except KeyConfigError as exc:
            typer.echo(f"--role/--tenant/--name: {exc}", err=True)
            raise typer.Exit(2) from exc
    typer.echo(token)
    typer.echo(
        f"key {principal.key_id} ({principal.name}, tenant {principal.tenant}, role {principal.role});"
        " store it now: it is not shown again",
        err=True,
    )


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of text")] = False,
) -> None:
    """List stored keys (never the keys themselves)."""
    from soctriage.service.auth import list_keys

    with open_store(Settings(), create=False) as store:
        keys = list_keys(store, tenant)
    if as_json:
        return echo_json(
            [
                {**asdict(key.principal), "created_at": key.created_at, "revoked_at": key.revoked_at}
                for key in keys
            ]
        )
    rows = [
        (
            key.principal.key_id,
            key.principal.name,
            key.principal.tenant,
            key.principal.role,
            f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active",
        )
        for key in keys
    ]
    typer.echo(render_table(("key id", "name", "tenant", "role", "state"), rows))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id shown by `keys list`")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from soctriage.service.auth import revoke_key

    with open_store(Settings(), create=False) as store:
        if not revoke_key(store, key_id):
            typer.echo(f"{key_id}: no active key with this id", err=True)
            raise typer.Exit(2)
    typer.echo(f"revoked {key_id}")
