"""Animations as the routes see them: submit, describe, cancel or delete, delete an account.

Route handlers choose the HTTP answer; this layer returns outcomes and raises
``HTTPException`` only for refusals that mean the same on every route (404, 422, 429, 503).
"""

from __future__ import annotations

import logging
import uuid
from enum import Enum

import anyio.from_thread
from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.context import AppContext
from api.errors import RateLimited, service_unavailable
from api.render_service import cancel_workflow, render_request, start_workflow
from api.schemas import Progress, TaskOut
from fractal.chunks import frame_costs
from fractal.db import Task, User, progress_frames, utcnow
from fractal.spec import AnimationSpec
from fractal.states import ACTIVE_STATES, TaskState

log = logging.getLogger("fractal.api")


# Iterations per pixel that a frame of estimated cost 1.0 (a simple frame) stands for.
ITERATIONS_PER_FRAME_COST = 100


def work_units(spec: AnimationSpec) -> int:
    """Estimated pixel iterations of the whole render: pixels x supersample² x the sum of
    the frames' estimated costs (``fractal.chunks.frame_costs``) x 100.

    ``max_iter`` is a bound, not the work: a deep zoom at max_iter 20000 runs a few
    thousand iterations where it is deepest, and none of them for most of its frames.
    """
    total_cost = sum(frame_costs(spec))
    return round(spec.pixels * spec.supersample**2 * total_cost * ITERATIONS_PER_FRAME_COST)


def submit(
    context: AppContext, session: Session, user: User, spec: AnimationSpec
) -> tuple[Task, dict[str, str]]:
    """Rate limit, cap, insert the row and start its workflow (the row fails if that fails).

    Returns the task and the rate-limit headers to answer with.
    """
    headers = context.spend_rate_limit(context.submissions, str(user.id))
    if work_units(spec) > context.settings.max_work_units:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"animation too large: its estimated work (pixels x supersample² x "
            f"frame costs x 100) is {work_units(spec)}, more than "
            f"{context.settings.max_work_units}",
        )
    # Lock the user's row so concurrent submissions count active tasks one at a time.
    session.execute(select(User.id).where(User.id == user.id).with_for_update())
    active = session.scalar(
        select(func.count()).where(Task.owner_id == user.id, Task.state.in_(ACTIVE_STATES))
    )
    if (active or 0) >= context.settings.max_active_tasks:
        session.rollback()
        raise RateLimited(
            f"{active} animations are already queued or running (limit "
            f"{context.settings.max_active_tasks}); wait for one to finish",
            {**headers, "Retry-After": "10"},
        )
    task = Task(
        owner_id=user.id,
        spec=spec.model_dump(mode="json"),
        frames_total=spec.frame_count,
        state=TaskState.queued,
        frames_done=0,
        created_at=utcnow(),
    )
    session.add(task)
    session.commit()
    try:
        anyio.from_thread.run(start_workflow, context, render_request(context, task))
    except Exception as error:
        log.exception("starting the workflow of task %s failed", task.id)
        task.state = TaskState.failed
        task.error = f"could not start the render workflow: {error}"[:2000]
        task.finished_at = utcnow()
        session.commit()
        raise service_unavailable("the render service (Temporal)") from None
    return task, headers


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
