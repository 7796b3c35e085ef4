"""Live progress of one task as Server-Sent Events, fed by what the workers record.

The workers already write each chunk's frames to ``task_chunks`` (and the workflow the
task's state); the stream reads the task every ``FRACTAL_EVENTS_POLL_SECONDS`` with a
short session of its own (a stream never holds a database connection while it waits) and
sends an event whenever the state, the frames done, whether it waits for a worker (and
why) or whether its cancel was requested changed, until a final state.

    retry: 3000

    id: 1
    event: progress
    data: {"id": "...", "state": "running", "progress": {"frames_done": 12, ...}, ...}

Each ``data`` is the task exactly as ``GET /v1/animations/{id}`` shows it. The last event
carries the final state (and the video's and poster's URLs when it succeeded); then the
stream ends. A task deleted meanwhile ends it with an ``event: gone``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi.concurrency import run_in_threadpool

from api.animation_service import describe
from api.context import AppContext
from api.schemas import TaskOut
from fractal.db import Task
from fractal.states import ACTIVE_STATES

# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0
# A stream ends after this long; clients reconnect (EventSource does by itself).
MAX_STREAM_SECONDS = 3600.0
RECONNECT_MILLISECONDS = 3000


def server_event(event: str, data: str, event_id: int | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


def read_task(context: AppContext, task_id: uuid.UUID) -> TaskOut | None:
    with context.sessions() as session:
        task = session.get(Task, task_id)
        return None if task is None else describe(context, session, task)


async def task_events(context: AppContext, task_id: uuid.UUID) -> AsyncIterator[str]:
    """The event stream of one task (its owner was checked before)."""
    interval = context.settings.events_poll_seconds
    started = last_write = time.monotonic()
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    sent: tuple[object, ...] | None = None
    number = 0
    while True:
        task = await run_in_threadpool(read_task, context, task_id)
        if task is None:
            yield server_event("gone", json.dumps({"detail": "animation not found"}))
            return
        now = time.monotonic()
        current = (
            task.state,
            task.progress.frames_done,
            task.waiting.reason if task.waiting else None,
            task.cancel_requested,
        )
        if current != sent:
            number += 1
            yield server_event("progress", task.model_dump_json(), number)
            sent, last_write = current, now
            if task.state not in ACTIVE_STATES:
                return
        elif now - last_write >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_write = now
        if now - started >= MAX_STREAM_SECONDS:
            return
        await asyncio.sleep(interval)
