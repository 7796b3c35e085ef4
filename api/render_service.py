"""The API's side of Temporal: what a task's workflow is asked to do, starting, cancelling
and terminating it. Every call is bounded by ``FRACTAL_TEMPORAL_CONNECT_TIMEOUT_SECONDS``:
an unreachable Temporal never holds a request for long (the caller decides what then)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from typing import TypeVar

from temporalio.client import WorkflowExecutionStatus
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.context import AppContext
from fractal.chunks import Chunk, plan_render_chunks
from fractal.db import Task
from fractal.settings import Settings
from fractal.spec import AnimationSpec
from fractal.temporal import bookkeeping_queue, workflow_id_for
from workflows.contracts import RenderRequest
from workflows.render import RenderAnimationWorkflow

T = TypeVar("T")
# A workflow task is a few milliseconds of work: when a worker dies holding one, Temporal
# hands it to another after this instead of the default 10 s.
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=5)
# The workflow outlives the API's own deadline on the task (FRACTAL_TASK_TIMEOUT_SECONDS)
# by this: the API fails the task and terminates the workflow first, Temporal's timeout is
# the last guard.
EXECUTION_TIMEOUT_MARGIN = timedelta(hours=1)


def frames_per_chunk(settings: Settings, spec: AnimationSpec) -> int:
    """Frames of one render activity, on average (``FRACTAL_CHUNK_SECONDS`` of video)."""
    return max(1, round(settings.chunk_seconds * spec.fps))


def chunk_plan(
    settings: Settings, spec: AnimationSpec, costs: Sequence[float] | None = None
) -> list[Chunk]:
    """The chunks a task of ``spec`` is rendered in, cut where their costs balance
    (``costs``: the spec's ``frame_costs`` if already computed)."""
    return plan_render_chunks(spec, frames_per_chunk(settings, spec), costs=costs)


def render_request(context: AppContext, task: Task) -> RenderRequest:
    """The workflow input of ``task``: its spec and chunks cut where their costs balance."""
    settings = context.settings
    spec = AnimationSpec.model_validate(task.spec)
    return RenderRequest(
        task_id=str(task.id),
        spec=task.spec,
        chunk_stops=[chunk.stop_frame for chunk in chunk_plan(settings, spec)],
        max_parallel_chunks=settings.max_parallel_chunks,
        heartbeat_timeout_seconds=settings.render_heartbeat_timeout_seconds,
        bookkeeping_task_queue=bookkeeping_queue(settings.temporal_task_queue),
        fairness_key=str(task.owner_id),
    )


async def bounded(context: AppContext, call: Awaitable[T]) -> T:
    """``call`` (connecting first if needed), or ``TimeoutError`` after the setting's time."""
    return await asyncio.wait_for(call, context.settings.temporal_connect_timeout_seconds)


async def start_workflow(context: AppContext, request: RenderRequest) -> None:
    """Start the task's workflow; one that already started (or ran) is left alone."""

    async def start() -> None:
        client = await context.temporal()
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await client.start_workflow(
                RenderAnimationWorkflow.run,
                request,
                id=workflow_id_for(request.task_id),
                task_queue=context.settings.temporal_task_queue,
                # A task id renders at most once, even after its workflow finished.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                task_timeout=WORKFLOW_TASK_TIMEOUT,
                execution_timeout=timedelta(seconds=context.settings.task_timeout_seconds)
                + EXECUTION_TIMEOUT_MARGIN,
                priority=Priority(fairness_key=request.fairness_key),
            )

    await bounded(context, start())


async def cancel_workflow(context: AppContext, task_id: str) -> bool:
    """Request cancellation; False when the workflow does not exist or already ended."""

    async def cancel() -> bool:
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

    return await bounded(context, cancel())


async def terminate_workflow(context: AppContext, task_id: str, reason: str) -> None:
    """End the task's workflow at once, without running any more of it (nothing a worker
    does for it afterwards can be recorded); a workflow that is gone or ended is fine."""

    async def terminate() -> None:
        client = await context.temporal()
        handle = client.get_workflow_handle(workflow_id_for(task_id))
        try:
            await handle.terminate(reason=reason)
        except RPCError as error:
            # NOT_FOUND: never started, or ended (terminate only reaches running ones).
            if error.status != RPCStatusCode.NOT_FOUND:
                raise

    await bounded(context, terminate())
