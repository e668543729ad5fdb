"""The FastAPI application: opens the store, checkpointer and queue once, maps service errors to HTTP."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from soctriage.agents.lifecycle import NotDecidable
from soctriage.agents.run import Triager
from soctriage.service import metrics
from soctriage.service.api import chat, embeddings, quarantine, reports, rules
from soctriage.service.api.routes import router
from soctriage.service.auth import Authenticator
from soctriage.service.cases import Cases, ConflictError, ForbiddenError, NotFoundError
from soctriage.service.config import Settings
from soctriage.service.console import pages, report_routes
from soctriage.service.console import routes as console
from soctriage.service.console.session import SessionSigner
from soctriage.service.queue import open_queue
from soctriage.tools.retrieval import LazyIndex
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("soctriage.api")


def create_app(settings: Settings, *, auth_enabled: bool = True, index: LazyIndex | None = None) -> FastAPI:
    """The service. `auth_enabled=False` serves every request as an admin of `settings.tenant` (loopback use).
    `index` is the process's retrieval index when in-process workers share it; unset, the app opens its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Triager(settings, index=index) as triager:
            queue = open_queue(settings, triager.store)
            app.state.cases = Cases(settings, triager, queue)
            app.state.retrieval = triager.deps.connectors.retrieval
            app.state.authenticator = Authenticator(triager.store, settings)
            untrack = metrics.track_store(triager.store, queue.depth)
            try:
                yield
            finally:
                untrack()

    app = FastAPI(
        title="soctriage",
        version="0.1.0",
        summary="Agentic triage of EDR alerts with a tamper-evident case ledger",
        lifespan=lifespan,
        # /docs is served by the console from the package's own Swagger UI files (no CDN); ReDoc has none.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.auth_enabled = auth_enabled
    secret = settings.session_secret
    ttl_s = settings.session_ttl_h * 3600
    app.state.session_signer = (
        SessionSigner(secret.get_secret_value().encode(), ttl_s) if secret else SessionSigner.random(ttl_s)
    )
    app.include_router(router)
    app.include_router(chat.router)
    app.include_router(reports.router)
    app.include_router(quarantine.router)
    app.include_router(rules.router)
    app.include_router(embeddings.router)
    app.include_router(console.router)
    app.include_router(report_routes.router)
    app.mount("/static", pages.StaticAssets(directory=pages.STATIC), name="static")
    for error, handler in pages.ERROR_HANDLERS.items():
        app.add_exception_handler(error, handler)
    app.add_middleware(AccessLog)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
        # FastAPI's default, minus its echo of the input: hostile input (NaN, infinity) may not render as JSON,
        # and the client has it anyway. `loc` and `msg` name the field and what is wrong.
        errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
        return ReplacingJSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> Response:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(ForbiddenError)
    async def forbidden(_: Request, exc: ForbiddenError) -> Response:
        return JSONResponse(status_code=403, content={"detail": str(exc)})

    @app.exception_handler(ConflictError)
    @app.exception_handler(NotDecidable)
    async def conflict(_: Request, exc: Exception) -> Response:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    return app


class ReplacingJSONResponse(JSONResponse):
    """A JSON response that may quote hostile input (a field name): a lone surrogate in it (not encodable as
    UTF-8) becomes `?` instead of failing the response with a 500."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", "replace")


class AccessLog:
    """One structured log line and one latency observation per request, labelled by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.HTTP_SECONDS.labels(scope["method"], route, str(status)).observe(elapsed)
            principal = getattr(scope.get("state", {}).get("principal"), "name", None)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "key": principal,
                },
            )
