"""What no worker can do for a task, done by every API process.

Every ``FRACTAL_WATCHDOG_INTERVAL_SECONDS`` each API process

* asks Temporal about the task queues (``DescribeTaskQueue``: pollers, backlog) and writes
  a probe object to the store, and keeps the answers (``api/task_queues.py``) for the
  tasks' ``waiting`` field, ``/readyz`` and ``/metrics``;
* ends the active tasks nobody else will end:

  - a cancel that its workflow did not complete within ``FRACTAL_CANCEL_GRACE_SECONDS``
    (no worker runs the task): the task is ``canceled``;
  - a task waiting for a worker longer than ``FRACTAL_WORKER_WAIT_TIMEOUT_SECONDS``: it
    ``failed``, saying so;
  - a task older than ``FRACTAL_TASK_TIMEOUT_SECONDS``: it ``failed``, saying so.

Ending a task (``end_task``) terminates its workflow (nothing a worker still does for it can
be recorded afterwards), records the state under the row's lock (unless the row is final
already: a result committed meanwhile stands), settles the user's CPU and deletes the
task's segments, video and poster. Several API processes may decide the same at once: the
lock lets one record it, terminating and deleting twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from api.context import AppContext
from api.render_service import terminate_workflow
from api.task_queues import POLLER_FRESH_SECONDS, QueueKind, QueueState, WaitReason
from fractal.db import Task, chunk_frames_done, utcnow
from fractal.states import ACTIVE_STATES, FINAL_STATES, TaskState
from fractal.storage import poster_key, segments_prefix, video_key
from fractal.temporal import bookkeeping_queue
from fractal.usage import settle_task

log = logging.getLogger("fractal.api")

# A background pass may wait longer for Temporal than a request (a first connection on a
# busy machine), so that a slow answer is not taken for an unreachable server.
TEMPORAL_TIMEOUT_SECONDS = 10.0

# Why the API ended a task (the ``reason`` label of fractal_api_tasks_ended_total).
CANCEL_NOT_COMPLETED = "cancel_not_completed"
WAITED_TOO_LONG = "waited_too_long"
DEADLINE = "deadline"
WORKFLOW_GONE = "workflow_gone"
END_REASONS = (CANCEL_NOT_COMPLETED, WAITED_TOO_LONG, DEADLINE, WORKFLOW_GONE)

GAVE_UP = {
    WaitReason.no_worker: "no worker picked up the render within {wait}",
    WaitReason.render_service_unavailable: "the render service (Temporal) was unreachable "
    "for {wait}",
    WaitReason.not_started: "no worker started the render within {wait}",
}


# -- the queues -----------------------------------------------------------------------


async def describe_queues(context: AppContext) -> dict[QueueKind, QueueState]:
    client = await context.temporal()
    settings = context.settings
    render = settings.temporal_task_queue
    targets = {
        QueueKind.workflows: (render, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        QueueKind.chunks: (render, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
        QueueKind.bookkeeping: (bookkeeping_queue(render), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    }
    now = utcnow()
    queues = {}
    for kind, (name, queue_type) in targets.items():
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.temporal_namespace,
                task_queue=TaskQueue(name=name, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=queue_type,
                report_stats=True,
            ),
            timeout=timedelta(seconds=TEMPORAL_TIMEOUT_SECONDS),
        )
        polls = [poller.last_access_time.ToDatetime(tzinfo=now.tzinfo) for poller in answer.pollers]
        fresh = [poll for poll in polls if (now - poll).total_seconds() <= POLLER_FRESH_SECONDS]
        queues[kind] = QueueState(
            pollers=len(fresh),
            backlog=int(answer.stats.approximate_backlog_count),
            backlog_age_seconds=answer.stats.approximate_backlog_age.ToTimedelta().total_seconds(),
            last_poll=max(polls) if polls else None,
        )
    return queues


async def refresh_health(context: AppContext) -> None:
    """Ask Temporal about the queues and probe the store; keep and export the answers."""
    health, metrics = context.queue_health, context.metrics
    now = utcnow()
    try:
        queues = await asyncio.wait_for(describe_queues(context), TEMPORAL_TIMEOUT_SECONDS)
    except Exception as error:
        log.warning("watchdog: Temporal does not answer: %r", error)
        health.unreachable(now)
    else:
        health.observed(now, queues)
        for kind, state in queues.items():
            metrics.queue_pollers.labels(kind.value).set(state.pollers)
            metrics.queue_backlog.labels(kind.value).set(state.backlog)
            metrics.queue_backlog_age.labels(kind.value).set(state.backlog_age_seconds)
    metrics.temporal_reachable.set(0 if health.unreachable_since else 1)
    try:
        await run_in_threadpool(context.store.check)
        health.storage_writable = True
    except Exception as error:
        if health.storage_writable is not False:
            log.warning("watchdog: the object store refuses a probe write: %r", error)
        health.storage_writable = False
    metrics.storage_writable.set(1 if health.storage_writable else 0)


# -- the tasks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ending:
    task_id: uuid.UUID
    state: TaskState
    reason: str  # END_REASONS
    error: str | None = None


def _duration(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:g} hours"
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


def tasks_to_end(context: AppContext, now: datetime) -> list[Ending]:
    """The active tasks to end now, and the active-task gauges."""
    settings, health, metrics = context.settings, context.queue_health, context.metrics
    grace = timedelta(seconds=settings.cancel_grace_seconds)
    deadline = timedelta(seconds=settings.task_timeout_seconds)
    give_up = timedelta(seconds=settings.worker_wait_timeout_seconds)
    wait = timedelta(seconds=settings.worker_wait_seconds)
    with context.sessions() as session:
        rows = session.execute(
            select(Task.id, Task.state, Task.created_at, Task.cancel_requested_at).where(
                Task.state.in_(ACTIVE_STATES)
            )
        ).all()
    endings = []
    counts = dict.fromkeys(ACTIVE_STATES, 0)
    waiting = 0
    for task_id, state, created_at, cancel_requested_at in rows:
        counts[TaskState(state)] += 1
        if health.waiting(state, created_at, now, wait) is not None:
            waiting += 1
        if cancel_requested_at is not None and now - cancel_requested_at >= grace:
            endings.append(Ending(task_id, TaskState.canceled, CANCEL_NOT_COMPLETED))
        elif now - created_at >= deadline:
            error = f"not finished within {_duration(deadline.total_seconds())} of its submission"
            endings.append(Ending(task_id, TaskState.failed, DEADLINE, error))
        elif (stuck := health.waiting(state, created_at, now, give_up)) is not None:
            error = GAVE_UP[stuck.reason].format(wait=_duration(give_up.total_seconds()))
            endings.append(Ending(task_id, TaskState.failed, WAITED_TOO_LONG, error))
    for state, count in counts.items():
        metrics.active_tasks.labels(state.value).set(count)
    metrics.waiting_tasks.set(waiting)
    return endings


def record_end(context: AppContext, ending: Ending) -> bool:
    """Record the state unless the row is final already (or gone); True if recorded."""
    with context.sessions() as session:
        task = session.scalar(select(Task).where(Task.id == ending.task_id).with_for_update())
        if task is None or task.state in FINAL_STATES:
            return False
        task.state = ending.state
        task.error = ending.error
        task.finished_at = utcnow()
        task.started_at = task.started_at or task.finished_at
        task.frames_done = chunk_frames_done(session, task.id, task.frames_total)
        settle_task(session, task)
        session.commit()
    return True


def delete_objects(context: AppContext, task_id: str) -> None:
    """The objects of a task that did not succeed; what fails now the orphan sweep retries."""
    try:
        context.store.delete(video_key(task_id))
        context.store.delete(poster_key(task_id))
        context.store.delete_prefix(segments_prefix(task_id))
    except Exception as error:
        log.warning("objects of task %s left for the orphan sweep: %r", task_id, error)


async def end_task(context: AppContext, ending: Ending) -> bool:
    """Terminate the workflow, record the end, delete the objects; True if this recorded it."""
    task_id = str(ending.task_id)
    try:
        await terminate_workflow(context, task_id, f"ended by the API: {ending.reason}")
    except Exception as error:
        # The row decides anyway: a workflow that runs on finds it final and commits nothing.
        log.warning("task %s: its workflow could not be terminated: %r", task_id, error)
    recorded = await run_in_threadpool(record_end, context, ending)
    if recorded:
        await run_in_threadpool(delete_objects, context, task_id)
        context.metrics.tasks_ended.labels(ending.state.value, ending.reason).inc()
        log.info("task %s ended by the API: %s (%s)", task_id, ending.state, ending.reason)
    return recorded


async def watch_once(context: AppContext) -> int:
    """One pass: health, then the tasks to end; how many this process ended."""
    await refresh_health(context)
    endings = await run_in_threadpool(tasks_to_end, context, utcnow())
    ended = 0
    for ending in endings:
        ended += await end_task(context, ending)
    return ended


async def watch_forever(context: AppContext, interval: timedelta) -> None:
    while True:
        try:
            await watch_once(context)
        except Exception as error:  # the database may be down: next time
            log.warning("watchdog failed: %r", error)
        await asyncio.sleep(interval.total_seconds())
