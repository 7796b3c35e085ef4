"""Finished animations expire: row, video and poster deleted ``video_retention_hours`` after
they end. The same loop sweeps orphaned objects: what a clean-up could not delete (a store
that refused it, a workflow the API ended while a worker still wrote) is deleted here.

Every API process sweeps every ``expiry_interval_seconds``. A sweep takes a batch of
expired rows with ``FOR UPDATE SKIP LOCKED``, so several replicas sweeping at once never
take the same row; for each it deletes the video and poster first and the row after, in
that row's transaction, so a sweep that dies half-way leaves a row whose files may be gone
(the next sweep deletes them again, a no-op) but never a file without its row. The user's CPU ledger
is not touched: expired work was still done.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from api.animation_service import stored_keys
from api.context import AppContext
from fractal.db import Task, utcnow
from fractal.states import ACTIVE_STATES, FINAL_STATES

log = logging.getLogger("fractal.api")

BATCH = 100


def expire_batch(context: AppContext, retention: timedelta) -> int:
    """Delete up to ``BATCH`` expired animations (videos and posters, then rows); how many."""
    cutoff = utcnow() - retention
    with context.sessions() as session:
        tasks = list(
            session.scalars(
                select(Task)
                .where(Task.state.in_(FINAL_STATES), Task.finished_at < cutoff)
                .order_by(Task.finished_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        for task in tasks:
            for key in stored_keys(task):
                context.store.delete(key)
            session.delete(task)
        session.commit()
    return len(tasks)


async def expire_animations(context: AppContext) -> int:
    """One sweep: every expired animation, batch after batch; how many were deleted."""
    hours = context.settings.video_retention_hours
    if not hours:
        return 0
    deleted = 0
    while True:
        count = await run_in_threadpool(expire_batch, context, timedelta(hours=hours))
        deleted += count
        if count < BATCH:
            return deleted


def _task_of(key: str) -> uuid.UUID | None:
    """The task an object belongs to: ``segments/<task>/...`` or ``videos/<task>.<ext>``."""
    kind, _, rest = key.partition("/")
    name = rest.split("/", 1)[0] if kind == "segments" else rest.split(".", 1)[0]
    try:
        return uuid.UUID(name)
    except ValueError:
        return None


def sweep_orphans(context: AppContext) -> int:
    """Delete the objects no task keeps: segments of a task that is not active, a video or
    poster its task does not record (or of a task that is gone); how many were deleted.

    A task's objects are only written while it is active, and its row exists before any of
    them, so nothing being written is ever swept."""
    store = context.store
    keys = store.list_keys("segments/") + store.list_keys("videos/")
    owners = {key: _task_of(key) for key in keys}
    ids = {task_id for task_id in owners.values() if task_id is not None}
    if not ids:
        return 0
    with context.sessions() as session:
        rows = {
            row.id: row
            for row in session.execute(
                select(Task.id, Task.state, Task.video_key, Task.poster_key).where(Task.id.in_(ids))
            )
        }
    deleted = 0
    for key, task_id in owners.items():
        row = rows.get(task_id) if task_id else None
        if task_id is None or (row is not None and row.state in ACTIVE_STATES):
            continue
        if row is not None and key in (row.video_key, row.poster_key):
            continue
        store.delete(key)
        deleted += 1
    return deleted


async def expire_forever(context: AppContext, interval: timedelta) -> None:
    while True:
        try:
            deleted = await expire_animations(context)
            if deleted:
                log.info("expiry: deleted %d finished animations and their files", deleted)
            orphans = await run_in_threadpool(sweep_orphans, context)
            if orphans:
                log.info("expiry: deleted %d orphaned objects", orphans)
        except Exception as error:  # the database or the store may be down: next time
            log.warning("expiry failed: %s", error)
        await asyncio.sleep(interval.total_seconds())
