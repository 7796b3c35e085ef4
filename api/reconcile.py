"""Starting the workflows of tasks whose start was lost (the API died between the row's
commit and the workflow's start)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from api.context import AppContext
from api.render_service import render_request, start_workflow
from fractal.db import Task, utcnow
from fractal.states import TaskState

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
                    select(Task).where(Task.state == TaskState.queued, Task.created_at < cutoff)
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
