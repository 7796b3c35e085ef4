"""The FastAPI application: ``create_app(settings)``; ``fractal api`` serves it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import DataError, OperationalError

from api.context import AppContext
from api.routes import animations, auth, compat, files, health, users
from api.security import check_jwt_secret
from api.tasks import render_request, start_workflow
from fractal.db import Task, TaskState, utcnow
from fractal.settings import Settings, get_settings

log = logging.getLogger("fractal.api")


async def reconcile_queued_tasks(context: AppContext, older_than: timedelta) -> int:
    """Start the workflow of every queued row whose start was lost (API died in between).

    Starting is idempotent (the workflow id is the task's), so a row whose workflow did
    start is left alone by Temporal.
    """
    cutoff = utcnow() - older_than

    def queued() -> list[Task]:
        with context.sessions() as session:
            return list(
                session.scalars(
                    select(Task).where(
                        Task.state == TaskState.queued.value, Task.created_at < cutoff
                    )
                )
            )

    tasks = await run_in_threadpool(queued)
    if not tasks:
        return 0
    try:
        await context.temporal()
    except Exception as error:
        log.warning("reconcile: Temporal unreachable, %d queued tasks wait: %s", len(tasks), error)
        return 0
    started = 0
    for task in tasks:
        try:
            await start_workflow(context, render_request(context, task))
            started += 1
        except Exception as error:
            log.warning("reconcile: task %s still not started: %s", task.id, error)
    return started


async def reconcile_forever(context: AppContext, interval: timedelta) -> None:
    """Reconcile at start (rows older than a few seconds), then every ``interval``.

    A row can be left queued without a workflow when the API process dies between the
    commit and the start; every API replica sweeps, and the workflow id makes the
    sweeps of several replicas harmless.
    """
    older_than = timedelta(seconds=5)
    while True:
        try:
            started = await reconcile_queued_tasks(context, older_than)
            if started:
                log.info("reconcile: started %d lost workflows", started)
        except Exception as error:  # the database may be down: try again next time
            log.warning("reconcile failed: %s", error)
        await asyncio.sleep(interval.total_seconds())
        older_than = interval


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_jwt_secret(settings)
    context = AppContext.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reconcile = asyncio.create_task(
            reconcile_forever(context, timedelta(seconds=settings.reconcile_interval_seconds))
        )
        try:
            yield
        finally:
            reconcile.cancel()
            context.close()

    app = FastAPI(
        title="Fractal Animation Server",
        version="1.0",
        description="Julia set animations rendered to MP4 by Temporal workers.",
        lifespan=lifespan,
    )
    app.state.context = context

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, error: OperationalError) -> JSONResponse:
        log.warning("database unreachable: %s", error)
        return JSONResponse({"detail": "database is unavailable"}, status_code=503)

    @app.exception_handler(DataError)
    async def unstorable_value(request: Request, error: DataError) -> JSONResponse:
        # A value Postgres cannot store (a NUL character, say) that validation let through.
        return JSONResponse({"detail": "a value in the request cannot be stored"}, 422)

    for module in (auth, users, animations, files, health, compat):
        app.include_router(module.router)
    return app
