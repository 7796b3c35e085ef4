"""Animations as the routes see them: submit, describe, cancel or delete, delete an account.

Route handlers choose the HTTP answer; this layer returns outcomes and raises
``HTTPException`` only for refusals that mean the same on every route (404, 422, 429, 503).
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime, time, timedelta
from enum import Enum

import anyio.from_thread
from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.context import AppContext
from api.errors import RateLimited, service_unavailable
from api.render_service import cancel_workflow, frames_per_chunk, render_request, start_workflow
from api.schemas import Progress, TaskOut
from fractal.admission import AdmissionLimits, CostEstimate, estimate_cost, mib, refusal
from fractal.db import Task, User, progress_frames, utcnow
from fractal.settings import Settings
from fractal.spec import AnimationSpec
from fractal.states import ACTIVE_STATES, TaskState
from fractal.usage import charge_cpu, cpu_used, settle_task, stored_bytes, utc_day

log = logging.getLogger("fractal.api")


def admission_limits(settings: Settings) -> AdmissionLimits:
    slots = settings.worker_activity_slots or len(os.sched_getaffinity(0))
    return AdmissionLimits(settings.max_task_cpu_seconds, settings.worker_memory_bytes, slots)


def _refuse(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


def _check_alone(settings: Settings, estimate: CostEstimate) -> None:
    """422 for what no amount of waiting would admit."""
    reason = refusal(estimate, admission_limits(settings))
    if reason is not None:
        raise _refuse(reason)
    if estimate.cpu_seconds > settings.cpu_seconds_per_day:
        raise _refuse(
            f"animation too costly: estimated {estimate.cpu_seconds:,.0f} CPU-seconds, more "
            f"than the daily quota of {settings.cpu_seconds_per_day:,.0f}"
        )
    if estimate.output_bytes > settings.stored_bytes_per_user:
        raise _refuse(
            f"animation too large to store: its video could take {mib(estimate.output_bytes)}, "
            f"the storage quota is {mib(settings.stored_bytes_per_user)}"
        )


def _seconds_to_next_utc_day(now: datetime) -> int:
    tomorrow = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


def _seconds_until_a_video_expires(session: Session, settings: Settings, user: User) -> int | None:
    if not settings.video_retention_hours:
        return None
    oldest = session.scalar(
        select(func.min(Task.finished_at)).where(
            Task.owner_id == user.id, Task.video_key.is_not(None)
        )
    )
    if oldest is None:
        return None
    expires = oldest + timedelta(hours=settings.video_retention_hours)
    return max(1, math.ceil((expires - utcnow()).total_seconds()))


def _check_quotas(
    session: Session, settings: Settings, user: User, estimate: CostEstimate, now: datetime
) -> None:
    """429 when the user's daily CPU or storage is used up (the caller holds the user's lock)."""
    used = cpu_used(session, user.id, utc_day(now))
    if used + estimate.cpu_seconds > settings.cpu_seconds_per_day:
        wait = _seconds_to_next_utc_day(now)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"daily CPU quota: {used:,.0f} of {settings.cpu_seconds_per_day:,.0f} "
            f"CPU-seconds used today, this animation is estimated at "
            f"{estimate.cpu_seconds:,.0f}; the quota renews at 00:00 UTC",
            headers={"Retry-After": str(wait)},
        )
    stored = stored_bytes(session, user.id)
    if stored + estimate.output_bytes > settings.stored_bytes_per_user:
        expiry = _seconds_until_a_video_expires(session, settings, user)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"storage quota: {mib(stored)} of {mib(settings.stored_bytes_per_user)} "
            f"in use or reserved, this animation may take {mib(estimate.output_bytes)}; "
            "delete animations to make room",
            headers={"Retry-After": str(expiry)} if expiry else None,
        )


def submit(
    context: AppContext,
    session: Session,
    user: User,
    spec: AnimationSpec,
    headers: MutableMapping[str, str],
) -> Task:
    """Rate limit, admission, quotas, caps; insert the row and start its workflow (the row
    fails if that fails). The rate limit's headers go into ``headers`` as soon as it is
    spent, so they reach the answer whatever it is."""
    settings = context.settings
    headers.update(context.spend_rate_limit(context.submissions, str(user.id)))
    estimate = estimate_cost(spec, frames_per_chunk(settings, spec))
    _check_alone(settings, estimate)
    # Lock the user's row so concurrent submissions count active tasks and quotas one at
    # a time.
    session.execute(select(User.id).where(User.id == user.id).with_for_update())
    active = session.scalar(
        select(func.count()).where(Task.owner_id == user.id, Task.state.in_(ACTIVE_STATES))
    )
    if (active or 0) >= settings.max_active_tasks:
        session.rollback()
        raise RateLimited(
            f"{active} animations are already queued or running (limit "
            f"{settings.max_active_tasks}); wait for one to finish",
            {**headers, "Retry-After": "10"},
        )
    now = utcnow()
    try:
        _check_quotas(session, settings, user, estimate, now)
    except HTTPException:
        session.rollback()
        raise
    task = Task(
        owner_id=user.id,
        spec=spec.model_dump(mode="json"),
        frames_total=spec.frame_count,
        state=TaskState.queued,
        frames_done=0,
        created_at=now,
        estimated_cpu_seconds=estimate.cpu_seconds,
        estimated_bytes=estimate.output_bytes,
    )
    session.add(task)
    charge_cpu(session, user.id, utc_day(now), estimate.cpu_seconds)
    session.commit()
    try:
        anyio.from_thread.run(start_workflow, context, render_request(context, task))
    except Exception as error:
        log.exception("starting the workflow of task %s failed", task.id)
        task.state = TaskState.failed
        task.error = f"could not start the render workflow: {error}"[:2000]
        task.finished_at = utcnow()
        settle_task(session, task)
        session.commit()
        raise service_unavailable("the render service (Temporal)") from None
    return task


def video_url(context: AppContext, task: Task) -> str | None:
    """A fresh presigned download URL of the task's video; None until it succeeded."""
    if task.state != TaskState.succeeded or not task.video_key:
        return None
    return context.store.presigned_url(task.video_key, context.settings.presign_expiry_seconds)


def describe(context: AppContext, session: Session, task: Task) -> TaskOut:
    """The task as the v1 API shows it: state, progress, timings and its video's URL."""
    done = progress_frames(session, task)
    return TaskOut(
        id=task.id,
        state=task.state,
        progress=Progress(
            frames_done=done,
            frames_total=task.frames_total,
            percent=round(100 * done / task.frames_total, 1) if task.frames_total else 0.0,
        ),
        spec=task.spec,
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        error=task.error,
        video_url=video_url(context, task),
        video_size=task.video_size,
    )


def owned_task(session: Session, user: User, task_id: uuid.UUID) -> Task:
    """The caller's task; someone else's answers 404 exactly like a missing one."""
    task = session.get(Task, task_id)
    if task is None or task.owner_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="animation not found")
    return task


def _cancel(context: AppContext, task: Task) -> bool:
    """Ask Temporal to cancel the task's workflow; False if none is running."""
    try:
        return anyio.from_thread.run(cancel_workflow, context, str(task.id))
    except Exception:
        raise service_unavailable("the render service (Temporal)") from None


class Removal(Enum):
    CANCEL_REQUESTED = "cancel requested"  # the workflow will mark the task canceled
    DELETED = "deleted"  # the task was finished: row and video are gone


def cancel_or_delete(context: AppContext, session: Session, task: Task) -> Removal:
    """Active task: cancel it (the workflow marks it canceled). Finished: delete it."""
    if task.state in ACTIVE_STATES:
        if not _cancel(context, task):
            # Its workflow never started or is gone: nothing else will update the row.
            task.state = TaskState.canceled
            task.finished_at = utcnow()
            settle_task(session, task)
            session.commit()
        return Removal.CANCEL_REQUESTED
    if task.video_key:
        context.store.delete(task.video_key)
    session.delete(task)
    session.commit()
    return Removal.DELETED


def delete_account(context: AppContext, session: Session, user: User) -> None:
    """Cancel the user's running workflows, delete their videos, tasks and account."""
    tasks = list(session.scalars(select(Task).where(Task.owner_id == user.id)))
    for task in tasks:
        if task.state in ACTIVE_STATES:
            _cancel(context, task)
    for task in tasks:
        if task.video_key:
            context.store.delete(task.video_key)
    session.delete(user)  # tasks and progress rows go with it (ON DELETE CASCADE)
    session.commit()
