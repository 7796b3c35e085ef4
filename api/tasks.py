"""Creating, describing, cancelling and deleting render tasks (v1 and compat routes)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

import anyio.from_thread
import redis
from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.context import AppContext
from api.schemas import Progress, TaskOut
from fractal.chunks import plan_render_chunks
from fractal.db import ACTIVE_STATES, Task, TaskState, User, frames_done, utcnow
from fractal.spec import AnimationSpec
from fractal.temporal import workflow_id_for
from workflows.contracts import RENDER_WORKFLOW, RenderRequest

log = logging.getLogger("fractal.api")


class RateLimited(HTTPException):
    def __init__(self, detail: str, headers: dict[str, str]) -> None:
        super().__init__(status.HTTP_429_TOO_MANY_REQUESTS, detail=detail, headers=headers)


def service_unavailable(what: str) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"{what} is unavailable")


def take_token(context: AppContext, rule_name: str, subject: str) -> dict[str, str]:
    """Spend one rate-limit token; 429 when none is left, 503 when Redis is down."""
    rule = context.submissions if rule_name == "submit" else context.auth_attempts
    try:
        decision = context.limiter.hit(rule, subject)
    except redis.RedisError:
        log.warning("redis unreachable: refusing %s", rule_name)
        raise service_unavailable("rate limiting (Redis)") from None
    if not decision.allowed:
        raise RateLimited("rate limit exceeded; retry later", decision.headers())
    return decision.headers()


def work_units(spec: AnimationSpec) -> int:
    return spec.pixels * spec.supersample**2 * spec.frame_count * spec.max_iter


def render_request(context: AppContext, task: Task) -> RenderRequest:
    spec = AnimationSpec.model_validate(task.spec)
    frames_per_chunk = max(1, round(context.settings.chunk_seconds * spec.fps))
    return RenderRequest(
        task_id=str(task.id),
        spec=task.spec,
        frames_total=task.frames_total,
        frames_per_chunk=frames_per_chunk,
        chunk_stops=[chunk.stop_frame for chunk in plan_render_chunks(spec, frames_per_chunk)],
        max_parallel_chunks=context.settings.max_parallel_chunks,
        heartbeat_timeout_seconds=context.settings.render_heartbeat_timeout_seconds,
    )


async def start_workflow(context: AppContext, request: RenderRequest) -> None:
    """Start the task's workflow; one that already started (or ran) is left alone."""
    client = await context.temporal()
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            RENDER_WORKFLOW,
            request,
            id=workflow_id_for(request.task_id),
            task_queue=context.settings.temporal_task_queue,
            # A task id renders at most once, even after its workflow finished.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )


def submit(
    context: AppContext, session: Session, user: User, spec: AnimationSpec
) -> tuple[Task, dict[str, str]]:
    """Rate limit, cap, insert the row and start its workflow (the row fails if that fails)."""
    headers = take_token(context, "submit", str(user.id))
    if work_units(spec) > context.settings.max_work_units:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"animation too large: pixels x supersample² x frames x max_iter = "
            f"{work_units(spec)} exceeds {context.settings.max_work_units}",
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
        state=TaskState.queued.value,
        frames_done=0,
        created_at=utcnow(),
    )
    session.add(task)
    session.commit()
    try:
        anyio.from_thread.run(start_workflow, context, render_request(context, task))
    except Exception as error:
        log.exception("starting the workflow of task %s failed", task.id)
        task.state = TaskState.failed.value
        task.error = f"could not start the render workflow: {error}"[:2000]
        task.finished_at = utcnow()
        session.commit()
        raise service_unavailable("the render service (Temporal)") from None
    return task, headers


def video_url(context: AppContext, task: Task) -> str | None:
    """A fresh presigned download URL of the task's video; None until it succeeded."""
    if task.state != TaskState.succeeded.value or not task.video_key:
        return None
    return context.store.presigned_url(task.video_key, context.settings.presign_expiry_seconds)


def task_out(context: AppContext, session: Session, task: Task) -> TaskOut:
    done = frames_done(session, task)
    url = video_url(context, task)
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
        video_url=url,
        video_size=task.video_size,
    )


def owned_task(session: Session, user: User, task_id: uuid.UUID) -> Task:
    """The caller's task; someone else's answers 404 exactly like a missing one."""
    task = session.get(Task, task_id)
    if task is None or task.owner_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="animation not found")
    return task


async def cancel_workflow(context: AppContext, task_id: str) -> bool:
    """Request cancellation; False when the workflow does not exist or already ended."""
    client = await context.temporal()
    handle = client.get_workflow_handle(workflow_id_for(task_id))
    try:
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            return False
        await handle.cancel()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def cancel_or_delete(context: AppContext, session: Session, task: Task) -> JSONResponse | None:
    """Active task: cancel it (202, the workflow marks it canceled). Finished: delete it."""
    if task.state in ACTIVE_STATES:
        try:
            running = anyio.from_thread.run(cancel_workflow, context, str(task.id))
        except Exception:
            raise service_unavailable("the render service (Temporal)") from None
        if not running:  # its workflow never started or is gone: nothing will update the row
            task.state = TaskState.canceled.value
            task.finished_at = utcnow()
            session.commit()
        return JSONResponse(
            task_out(context, session, task).model_dump(mode="json"),
            status_code=status.HTTP_202_ACCEPTED,
        )
    if task.video_key:
        context.store.delete(task.video_key)
    session.delete(task)
    session.commit()
    return None


def delete_user(context: AppContext, session: Session, user: User) -> None:
    """Cancel the user's running workflows, delete their videos, tasks and account."""
    tasks = list(session.scalars(select(Task).where(Task.owner_id == user.id)))
    for task in tasks:
        if task.state in ACTIVE_STATES:
            try:
                anyio.from_thread.run(cancel_workflow, context, str(task.id))
            except Exception:
                raise service_unavailable("the render service (Temporal)") from None
    for task in tasks:
        if task.video_key:
            context.store.delete(task.video_key)
    session.delete(user)  # tasks and progress rows go with it (ON DELETE CASCADE)
    session.commit()


def spec_summary(task: Task) -> dict[str, Any]:
    c = task.spec.get("c") or {}
    return {"z_re": float(c.get("re", 0.0)), "z_im": float(c.get("im", 0.0))}
