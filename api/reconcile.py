"""Starting the workflows of tasks whose start was lost (the API died between the row's
commit and the workflow's start)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select, update

from api.context import AppContext
from api.render_service import render_request, start_workflow
from fractal.db import Task, utcnow
from fractal.states import TaskState

log = logging.getLogger("fractal.api")


async def reconcile_queued_tasks(context: AppContext, older_than: timedelta) -> int:
    """Start the workflow of every queued row whose start was lost (the API died in between)
    or deferred (Temporal was unreachable when it was submitted), and record it.

    Starting is idempotent (the workflow id is the task's), so a row whose workflow did
    start is left alone by Temporal.
    """
    cutoff = utcnow() - older_than

    def queued() -> list[Task]:
        with context.sessions() as session:
            return list(
                session.scalars(
                    select(Task)
                    .where(
                        Task.state == TaskState.queued,
                        Task.workflow_started_at.is_(None),
                        Task.created_at < cutoff,
                    )
                    .order_by(Task.created_at)
                )
            )

    def record_start(task: Task) -> None:
        with context.sessions() as session:
            session.execute(
                update(Task)
                .where(Task.id == task.id, Task.workflow_started_at.is_(None))
                .values(workflow_started_at=utcnow())
            )
            session.commit()

    tasks = await run_in_threadpool(queued)
    if not tasks:
        return 0
    started = 0
    for task in tasks:
        try:
            await start_workflow(context, render_request(context, task))
        except Exception as error:
            log.warning("reconcile: %d queued tasks wait for Temporal: %r", len(tasks), error)
            break
        await run_in_threadpool(record_start, task)
        started += 1
    return started


async def reconcile_forever(context: AppContext, interval: timedelta) -> None:
    """Reconcile at start, then every ``interval``: rows older than a few seconds (a
    younger one may still be starting in its submission).

    A row is left queued without a workflow when the API process dies between the commit
    and the start, or when Temporal was unreachable then; every API replica sweeps, and the
    workflow id makes the sweeps of several replicas harmless.
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
