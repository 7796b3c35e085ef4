"""Liveness (the process answers) and readiness (every dependency answers)."""

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
    return JSONResponse({"ready": ready, "checks": report}, status_code=200 if ready else 503)
