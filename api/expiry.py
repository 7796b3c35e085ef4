"""Finished animations expire: row, video and poster deleted ``video_retention_hours`` after
they end.

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
from datetime import timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from api.animation_service import stored_keys
from api.context import AppContext
from fractal.db import Task, utcnow
from fractal.states import FINAL_STATES

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


async def expire_forever(context: AppContext, interval: timedelta) -> None:
    while True:
        try:
            deleted = await expire_animations(context)
            if deleted:
                log.info("expiry: deleted %d finished animations and their files", deleted)
        except Exception as error:  # the database or the store may be down: next time
            log.warning("expiry failed: %s", error)
        await asyncio.sleep(interval.total_seconds())
