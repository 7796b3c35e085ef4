"""Liveness (the process answers) and readiness (every dependency answers).

Readiness checks what the API needs to serve: Postgres, Redis, Temporal, and an object
store that takes a write (a probe object written, read back and deleted). The workers are
reported beside the checks (pollers and backlog of the task queues, from the watchdog's
latest pass) without making the API unready: it still serves reads and queues renders
without them, and a scaler (KEDA) may run none while nothing is queued."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import ContextDep

log = logging.getLogger("fractal.api")
router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
async def readyz(context: ContextDep) -> JSONResponse:
    def postgres() -> None:
        with context.engine.connect() as connection:
            connection.execute(text("select 1"))

    async def temporal() -> None:
        client = await context.temporal()
        await client.service_client.check_health(timeout=timedelta(seconds=2))

    checks = {
        "postgres": run_in_threadpool(postgres),
        "redis": run_in_threadpool(context.redis.ping),
        "storage": run_in_threadpool(context.store.check),
        "temporal": temporal(),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(check, 5) for check in checks.values()), return_exceptions=True
    )
    report = {}
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            # The details (addresses, driver messages) are for the operator's log, not for
            # whoever asks: the answer only says which dependency is down.
            log.warning("readiness: %s is unreachable: %r", name, result)
            report[name] = "unreachable"
        else:
            report[name] = "ok"
    ready = all(value == "ok" for value in report.values())
    health = context.queue_health
    queues = {
        kind.value: {
            "pollers": state.pollers,
            "backlog": state.backlog,
            "backlog_age_seconds": round(state.backlog_age_seconds, 1),
        }
        for kind, state in health.queues.items()
    }
    workers = {
        # None until the watchdog's first pass, or while Temporal does not answer.
        "polling": health.workers,
        "checked_at": health.checked_at.isoformat() if health.checked_at else None,
        "task_queues": queues,
    }
    body = {"ready": ready, "checks": report, "workers": workers}
    return JSONResponse(body, status_code=200 if ready else 503)
