"""Animations as the routes see them: submit, describe, cancel or delete, delete an account.

Route handlers choose the HTTP answer; this layer returns outcomes and raises
``HTTPException`` only for refusals that mean the same on every route (404, 422, 429, 503).
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import Enum

import anyio.from_thread
from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.context import AppContext
from api.errors import RateLimited, service_unavailable
from api.observability import (
    CPU_QUOTA,
    STORAGE_QUOTA,
    TOO_COSTLY,
    TOO_LARGE_TO_STORE,
    TOO_MUCH_MEMORY,
)
from api.render_service import (
    cancel_workflow,
    frames_per_chunk,
    render_request,
    start_workflow,
    terminate_workflow,
)
from api.schemas import Progress, TaskOut, WaitingOut
from api.watchdog import WORKFLOW_GONE, Ending, delete_objects, end_task
from fractal.admission import (
    AdmissionLimits,
    CostEstimate,
    Limit,
    estimate_cost,
    exceeded_limit,
    mib,
)
from fractal.db import Task, User, progress_frames, utcnow
from fractal.observability import bind
from fractal.settings import Settings
from fractal.spec import AnimationSpec
from fractal.states import ACTIVE_STATES, FINAL_STATES, TaskState
from fractal.temporal import workflow_id_for
from fractal.usage import charge_cpu, cpu_used, settle_task, stored_bytes, utc_day

log = logging.getLogger("fractal.api")


@dataclass(frozen=True)
class Refusal:
    """Why a submission is refused, in the client's words, and its label in the metrics."""

    outcome: str
    detail: str


class SubmissionRefused(HTTPException):
    def __init__(
        self, refusal: Refusal, status_code: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status_code, detail=refusal.detail, headers=headers)
        self.outcome = refusal.outcome


def admission_limits(settings: Settings) -> AdmissionLimits:
    slots = settings.worker_activity_slots or len(os.sched_getaffinity(0))
    return AdmissionLimits(settings.max_task_cpu_seconds, settings.worker_memory_bytes, slots)


def cost_estimate(settings: Settings, spec: AnimationSpec) -> CostEstimate:
    """The admission model's upper bounds for ``spec`` in the chunks it would be cut into."""
    return estimate_cost(spec, frames_per_chunk(settings, spec))


def admission_refusal(settings: Settings, estimate: CostEstimate) -> Refusal | None:
    """Why no amount of waiting would admit the animation (a 422), or None."""
    exceeded = exceeded_limit(estimate, admission_limits(settings))
    if exceeded is not None:
        limit, detail = exceeded
        return Refusal(TOO_COSTLY if limit is Limit.CPU else TOO_MUCH_MEMORY, detail)
    if estimate.cpu_seconds > settings.cpu_seconds_per_day:
        return Refusal(
            TOO_COSTLY,
            f"animation too costly: estimated {estimate.cpu_seconds:,.0f} CPU-seconds, more "
            f"than the daily quota of {settings.cpu_seconds_per_day:,.0f}",
        )
    if estimate.output_bytes > settings.stored_bytes_per_user:
        return Refusal(
            TOO_LARGE_TO_STORE,
            f"animation too large to store: its video could take {mib(estimate.output_bytes)}, "
            f"the storage quota is {mib(settings.stored_bytes_per_user)}",
        )
    return None


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
        raise SubmissionRefused(
            Refusal(
                CPU_QUOTA,
                f"daily CPU quota: {used:,.0f} of {settings.cpu_seconds_per_day:,.0f} "
                f"CPU-seconds used today, this animation is estimated at "
                f"{estimate.cpu_seconds:,.0f}; the quota renews at 00:00 UTC",
            ),
            status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(wait)},
        )
    stored = stored_bytes(session, user.id)
    if stored + estimate.output_bytes > settings.stored_bytes_per_user:
        expiry = _seconds_until_a_video_expires(session, settings, user)
        raise SubmissionRefused(
            Refusal(
                STORAGE_QUOTA,
                f"storage quota: {mib(stored)} of {mib(settings.stored_bytes_per_user)} "
                f"in use or reserved, this animation may take {mib(estimate.output_bytes)}; "
                "delete animations to make room",
            ),
            status.HTTP_429_TOO_MANY_REQUESTS,
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
    spent, so they reach the answer whatever it is.

    Every call counts once in ``fractal_api_submissions_total`` under its outcome.
    """
    attempt = _Attempt()
    try:
        return _submit(context, session, user, spec, headers, attempt)
    except SubmissionRefused as refused:
        attempt.outcome = refused.outcome
        raise
    finally:
        context.metrics.submissions.labels(attempt.outcome).inc()


@dataclass
class _Attempt:
    outcome: str = "error"  # until a known refusal or the acceptance says otherwise


def _submit(
    context: AppContext,
    session: Session,
    user: User,
    spec: AnimationSpec,
    headers: MutableMapping[str, str],
    attempt: _Attempt,
) -> Task:
    settings = context.settings
    try:
        headers.update(context.spend_rate_limit(context.submissions, str(user.id)))
    except RateLimited:
        attempt.outcome = "rate_limited"
        raise
    except HTTPException:
        attempt.outcome = "rate_limiter_unavailable"
        raise
    if context.queue_health.storage_writable is False:
        # The latest probe write failed: a render could not store anything.
        attempt.outcome = "storage_unavailable"
        raise service_unavailable("the object store (it refuses writes)")
    estimate = cost_estimate(settings, spec)
    refusal = admission_refusal(settings, estimate)
    if refusal is not None:
        raise SubmissionRefused(refusal, status.HTTP_422_UNPROCESSABLE_CONTENT)
    # Lock the user's row so concurrent submissions count active tasks and quotas one at
    # a time.
    session.execute(select(User.id).where(User.id == user.id).with_for_update())
    active = session.scalar(
        select(func.count()).where(Task.owner_id == user.id, Task.state.in_(ACTIVE_STATES))
    )
    if (active or 0) >= settings.max_active_tasks:
        session.rollback()
        attempt.outcome = "too_many_active"
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
    bind(task_id=task.id, workflow_id=workflow_id_for(str(task.id)))
    # The row is durable from here: if its workflow cannot be started now, the reconcile
    # loop starts it once Temporal answers (the task shows it waits, and why).
    attempt.outcome = "start_deferred"
    try:
        # Bounded by FRACTAL_TEMPORAL_CONNECT_TIMEOUT_SECONDS (2 s).
        anyio.from_thread.run(start_workflow, context, render_request(context, task))
    except Exception as error:
        log.warning("task %s queued, its workflow starts later: %r", task.id, error)
    else:
        task.workflow_started_at = utcnow()
        session.commit()
        attempt.outcome = "accepted"
    log.info("task %s queued (%d frames)", task.id, task.frames_total)
    return task


def video_url(context: AppContext, task: Task) -> str | None:
    """A fresh presigned download URL of the task's video; None until it succeeded."""
    if task.state != TaskState.succeeded or not task.video_key:
        return None
    return context.store.presigned_url(task.video_key, context.settings.presign_expiry_seconds)


def poster_url(context: AppContext, task: Task) -> str | None:
    """A fresh presigned URL of the task's poster image; None without one."""
    if task.state != TaskState.succeeded or not task.poster_key:
        return None
    return context.store.presigned_url(task.poster_key, context.settings.presign_expiry_seconds)


def stored_keys(task: Task) -> list[str]:
    """The task's objects that outlive its render: the video and its poster."""
    return [key for key in (task.video_key, task.poster_key) if key]


def eta_seconds(task: Task, frames_done: int) -> float | None:
    """Seconds left at the pace since the task started running; None until it can tell."""
    if task.state != TaskState.running or task.started_at is None or frames_done <= 0:
        return None
    elapsed = (utcnow() - task.started_at).total_seconds()
    return round(max(0.0, elapsed / frames_done * (task.frames_total - frames_done)), 1)


def waiting(context: AppContext, task: Task) -> WaitingOut | None:
    """Why an active task has no worker, once it has waited long enough to say so."""
    wait = timedelta(seconds=context.settings.worker_wait_seconds)
    found = context.queue_health.waiting(task.state, task.created_at, utcnow(), wait)
    if found is None:
        return None
    return WaitingOut(reason=found.reason.value, message=found.message, since=found.since)


def describe(context: AppContext, session: Session, task: Task) -> TaskOut:
    """The task as the v1 API shows it: state, progress, timings, its video's and poster's
    URLs, whether it waits for a worker."""
    done = progress_frames(session, task)
    return TaskOut(
        id=task.id,
        state=task.state,
        progress=Progress(
            frames_done=done,
            frames_total=task.frames_total,
            percent=round(100 * done / task.frames_total, 1) if task.frames_total else 0.0,
            eta_seconds=eta_seconds(task, done),
        ),
        spec=task.spec,
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        error=task.error,
        video_url=video_url(context, task),
        video_size=task.video_size,
        poster_url=poster_url(context, task),
        waiting=waiting(context, task),
        cancel_requested=task.state in ACTIVE_STATES and task.cancel_requested_at is not None,
    )


def owned_task(session: Session, user: User, task_id: uuid.UUID) -> Task:
    """The caller's task; someone else's answers 404 exactly like a missing one."""
    task = session.get(Task, task_id)
    if task is None or task.owner_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="animation not found")
    bind(task_id=task.id)
    return task


def _locked(session: Session, task: Task) -> Task:
    """The task's row, locked, as it is now (another request or the workflow may have moved
    it since it was read): what happens next is decided on this."""
    locked = session.scalar(
        select(Task)
        .where(Task.id == task.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="animation not found")
    return locked


class Removal(Enum):
    CANCELED = "canceled"  # it was queued (no worker had started it): canceled on the spot
    CANCEL_REQUESTED = "cancel requested"  # it runs: its workflow (or the watchdog) ends it
    DELETED = "deleted"  # it was finished: row, video and poster are gone


def request_cancel(context: AppContext, session: Session, task: Task) -> Removal | None:
    """See ``_request_cancel``. The statuses this process keeps of it are dropped
    (api/status_cache.py) after the change too: no answer read before it is served again."""
    try:
        return _request_cancel(context, session, task)
    finally:
        context.statuses.forget_task(task.id)


def _request_cancel(context: AppContext, session: Session, task: Task) -> Removal | None:
    """Cancel an active task; None when it is final already (nothing changed).

    Decided under the row's lock, so the answer is what happens: a queued task is canceled
    at once (no worker needed: a workflow that starts later finds it canceled and renders
    nothing); a running one gets ``cancel_requested_at``, after which its workflow cannot
    commit a result, then its workflow is asked to stop. A result committed before the lock
    stands: the task is final and None says so."""
    task = _locked(session, task)
    if task.state in FINAL_STATES:
        session.rollback()
        return None
    now = utcnow()
    task.cancel_requested_at = task.cancel_requested_at or now
    if task.state == TaskState.queued:
        task.state = TaskState.canceled
        task.finished_at = now
        settle_task(session, task)
        session.commit()
        _terminate_quietly(context, task)
        return Removal.CANCELED
    session.commit()
    try:
        running = anyio.from_thread.run(cancel_workflow, context, str(task.id))
    except Exception as error:
        # The watchdog ends it after FRACTAL_CANCEL_GRACE_SECONDS.
        log.warning("cancel of task %s not delivered: %r", task.id, error)
        return Removal.CANCEL_REQUESTED
    if not running:
        # Its workflow is gone (ended without recording, or never started): nothing else
        # will end the row.
        anyio.from_thread.run(end_task, context, Ending(task.id, TaskState.canceled, WORKFLOW_GONE))
    return Removal.CANCEL_REQUESTED


def _terminate_quietly(context: AppContext, task: Task) -> None:
    try:
        anyio.from_thread.run(terminate_workflow, context, str(task.id), "canceled while queued")
    except Exception as error:  # it will find the row canceled and render nothing
        log.info("workflow of canceled task %s not terminated: %r", task.id, error)


def cancel_or_delete(context: AppContext, session: Session, task: Task) -> Removal:
    """See ``_cancel_or_delete``. The statuses this process keeps of it are dropped
    (api/status_cache.py) after the change too: no answer read before it is served again."""
    try:
        return _cancel_or_delete(context, session, task)
    finally:
        context.statuses.forget_task(task.id)


def _cancel_or_delete(context: AppContext, session: Session, task: Task) -> Removal:
    """Active task: cancel it. Finished: delete it with its video and poster."""
    task = _locked(session, task)
    if task.state in ACTIVE_STATES:
        session.rollback()
        removal = request_cancel(context, session, task)
        if removal is not None:
            return removal
        task = _locked(session, task)  # it finished meanwhile: DELETE deletes it
    keys = stored_keys(task)
    session.delete(task)
    session.commit()
    for key in keys:
        context.store.delete(key)
    return Removal.DELETED


def delete_account(context: AppContext, session: Session, user: User) -> None:
    """See ``_delete_account``. The statuses this process keeps of it are dropped
    (api/status_cache.py) after the change too: no answer read before it is served again."""
    try:
        _delete_account(context, session, user)
    finally:
        context.statuses.forget_user(user.id)


def _delete_account(context: AppContext, session: Session, user: User) -> None:
    """Cancel the user's active workflows, delete their videos, tasks and account.

    The rows are locked first, so a render cannot commit its result in between; a workflow
    asked to stop then finds its row gone and deletes what it made, and what is left (a
    Temporal that did not answer) the orphan sweep deletes."""
    tasks = list(session.scalars(select(Task).where(Task.owner_id == user.id).with_for_update()))
    for task in tasks:
        if task.state in ACTIVE_STATES:
            try:
                anyio.from_thread.run(cancel_workflow, context, str(task.id))
            except Exception as error:
                log.warning("cancel of task %s not delivered: %r", task.id, error)
    keys = [key for task in tasks for key in stored_keys(task)]
    session.delete(user)  # tasks and progress rows go with it (ON DELETE CASCADE)
    session.commit()
    for task in tasks:
        if task.state in ACTIVE_STATES:
            delete_objects(context, str(task.id))
    for key in keys:
        context.store.delete(key)
