"""The API's side of Temporal: what a task's workflow is asked to do, starting and cancelling it."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.context import AppContext
from fractal.chunks import Chunk, plan_render_chunks
from fractal.db import Task
from fractal.settings import Settings
from fractal.spec import AnimationSpec
from fractal.temporal import workflow_id_for
from workflows.contracts import RenderRequest
from workflows.render import RenderAnimationWorkflow


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
    spec = AnimationSpec.model_validate(task.spec)
    return RenderRequest(
        task_id=str(task.id),
        spec=task.spec,
        chunk_stops=[chunk.stop_frame for chunk in chunk_plan(context.settings, spec)],
        max_parallel_chunks=context.settings.max_parallel_chunks,
        heartbeat_timeout_seconds=context.settings.render_heartbeat_timeout_seconds,
    )


async def start_workflow(context: AppContext, request: RenderRequest) -> None:
    """Start the task's workflow; one that already started (or ran) is left alone."""
    client = await context.temporal()
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            RenderAnimationWorkflow.run,
            request,
            id=workflow_id_for(request.task_id),
            task_queue=context.settings.temporal_task_queue,
            # A task id renders at most once, even after its workflow finished.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )


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
