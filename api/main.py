"""The FastAPI application: ``create_app(settings)``; ``fractal api`` serves it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DataError, OperationalError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import paths
from api.body_guard import BodyGuard
from api.context import AppContext
from api.docs_policy import DocsPolicy
from api.expiry import expire_forever
from api.observability import (
    ApiMetrics,
    RequestObservability,
    instrument_tracing,
    metrics_endpoint,
)
from api.reconcile import reconcile_forever
from api.response_headers import ALWAYS, ResponseHeaders
from api.routes import (
    animations,
    auth,
    compat,
    events,
    files,
    health,
    previews,
    spec,
    studio,
    users,
)
from api.security import check_jwt_secret
from api.validation import request_validation_failed
from api.watchdog import watch_forever
from fractal.observability import shutdown_tracing, temporal_interceptors, tracer_provider
from fractal.settings import Settings, get_settings

log = logging.getLogger("fractal.api")


def create_app(settings: Settings | None = None, *, tracing: Any = None) -> FastAPI:
    """The API. ``tracing``: an OpenTelemetry TracerProvider to trace with (the tests pass
    one with an in-memory exporter); by default one exporting to ``FRACTAL_OTLP_ENDPOINT``,
    or none, and then nothing is traced."""
    settings = settings or get_settings()
    check_jwt_secret(settings)
    owns_tracing = tracing is None
    provider = tracer_provider(settings, "fractal-api") if owns_tracing else tracing
    metrics = ApiMetrics.create()
    context = AppContext.from_settings(
        settings, metrics=metrics, temporal_interceptors=temporal_interceptors(provider)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loops = [
            asyncio.create_task(
                reconcile_forever(context, timedelta(seconds=settings.reconcile_interval_seconds))
            ),
            asyncio.create_task(
                expire_forever(context, timedelta(seconds=settings.expiry_interval_seconds))
            ),
            asyncio.create_task(
                watch_forever(context, timedelta(seconds=settings.watchdog_interval_seconds))
            ),
            # Load the kernels and image codecs for previews without delaying the start.
            asyncio.create_task(run_in_threadpool(context.stills.warm)),
        ]
        metrics_server = None
        if settings.api_metrics_port:
            from prometheus_client import start_http_server

            metrics_server, _ = start_http_server(
                settings.api_metrics_port, settings.metrics_host, metrics.registry
            )
            log.info(
                "metrics on http://%s:%d/metrics", settings.metrics_host, settings.api_metrics_port
            )
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            context.close()
            if owns_tracing:
                shutdown_tracing(provider)

    # Swagger UI (/docs) and ReDoc (/redoc) from assets in a package: they work offline.
    app = FastAPIOffline(
        title="Fractal Animation Server",
        version="1.0",
        description="Julia set animations rendered to MP4 by Temporal workers.",
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.metrics = metrics
    if provider is not None:
        instrument_tracing(app, provider)
    if not settings.api_metrics_port:
        app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.exception_handler(RequestValidationError)(request_validation_failed)

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, error: OperationalError) -> JSONResponse:
        log.warning("database unreachable: %s", error)
        return JSONResponse({"detail": "database is unavailable"}, status_code=503)

    @app.exception_handler(DataError)
    async def unstorable_value(request: Request, error: DataError) -> JSONResponse:
        # A value Postgres cannot store (a NUL character, say) that validation let through.
        return JSONResponse({"detail": "a value in the request cannot be stored"}, 422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # Only what fails outside RequestObservability (which answers the rest with the
        # request id) reaches Starlette's error middleware, outside every other one: add
        # the headers ResponseHeaders would have added.
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(
            {"detail": "internal server error"},
            status_code=500,
            headers={**ALWAYS, "Cache-Control": "no-store"},
        )

    for module in (auth, users, spec, animations, events, previews, files, health, studio):
        app.include_router(module.router)
    if settings.compat_routes:
        app.include_router(compat.router)
    app.mount(paths.STUDIO, studio.studio_files(), name="studio")
    # The last added runs first. From the outside in: the headers every answer carries;
    # the client's address resolved from trusted proxies (logs, rate limits); request id,
    # metrics and the access log, which so see and count the body checks' 413, 408 and
    # 422 too; then the body checks, before any route or authentication runs.
    app.add_middleware(DocsPolicy, paths={"/docs", "/redoc"})
    app.add_middleware(
        BodyGuard,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout_seconds,
    )
    app.add_middleware(RequestObservability, metrics=metrics)
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.add_middleware(ResponseHeaders)
    return app
