"""The FastAPI application: ``create_app(settings)``; ``fractal api`` serves it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api.body_guard import BodyGuard
from api.context import AppContext
from api.expiry import expire_forever
from api.reconcile import reconcile_forever
from api.response_headers import ALWAYS, ResponseHeaders
from api.routes import animations, auth, compat, files, health, users
from api.security import check_jwt_secret
from api.validation import request_validation_failed
from fractal.settings import Settings, get_settings

log = logging.getLogger("fractal.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_jwt_secret(settings)
    context = AppContext.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loops = [
            asyncio.create_task(
                reconcile_forever(context, timedelta(seconds=settings.reconcile_interval_seconds))
            ),
            asyncio.create_task(
                expire_forever(context, timedelta(seconds=settings.expiry_interval_seconds))
            ),
        ]
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
            context.close()

    app = FastAPI(
        title="Fractal Animation Server",
        version="1.0",
        description="Julia set animations rendered to MP4 by Temporal workers.",
        lifespan=lifespan,
    )
    app.state.context = context
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
        # Outside the middleware stack (Starlette's error middleware): add its headers here.
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(
            {"detail": "internal error"},
            status_code=500,
            headers={**ALWAYS, "Cache-Control": "no-store"},
        )

    for module in (auth, users, animations, files, health):
        app.include_router(module.router)
    if settings.compat_routes:
        app.include_router(compat.router)
    # The last added runs first: headers on every answer, the client's address resolved
    # from trusted proxies, then the body checks, all before any route or authentication.
    app.add_middleware(
        BodyGuard,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout_seconds,
    )
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.add_middleware(ResponseHeaders)
    return app
