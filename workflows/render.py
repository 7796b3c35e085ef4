"""The render workflow: render the planned chunks in parallel, join them, record the result.

Deterministic code only: it imports the light contracts, chunk planning and task states;
the activities run in the worker (``activities/render.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from fractal.chunks import chunks_from_stops
    from fractal.states import TaskState
    from workflows.contracts import (
        INVALID_SPEC_ERROR,
        CleanupInput,
        JoinInput,
        JoinResult,
        PosterInput,
        PosterResult,
        RenderActivities,
        RenderChunkInput,
        RenderChunkResult,
        RenderRequest,
        TaskStateUpdate,
    )

# Transient faults (a storage hiccup, a lost worker) retry with exponential backoff.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=[INVALID_SPEC_ERROR],
)
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
# A chunk is about a second of video; generous for big frames.
RENDER_TIMEOUT = timedelta(minutes=30)
JOIN_TIMEOUT = timedelta(minutes=30)
JOIN_HEARTBEAT_TIMEOUT = timedelta(minutes=2)
# The poster is one frame: a few attempts, and a render without one still succeeds.
POSTER_TIMEOUT = timedelta(minutes=10)
POSTER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=[INVALID_SPEC_ERROR],
)
# Workflows started before the poster step existed replay without it.
POSTER_PATCH = "write-poster"
# Wait for a cancelled activity to stop, so the cleanup runs after its last write.
WAIT_FOR_CANCEL = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED


@workflow.defn
class RenderAnimationWorkflow:
    @workflow.run
    async def run(self, request: RenderRequest) -> JoinResult:
        chunks = chunks_from_stops(request.chunk_stops)
        try:
            await self._set_state(TaskStateUpdate(request.task_id, TaskState.running))
            limit = asyncio.Semaphore(max(1, request.max_parallel_chunks))

            async def render(index: int) -> RenderChunkResult:
                chunk = chunks[index]
                async with limit:
                    return await workflow.execute_activity_method(
                        RenderActivities.render_chunk,
                        RenderChunkInput(
                            request.task_id,
                            request.spec,
                            chunk.index,
                            chunk.first_frame,
                            chunk.stop_frame,
                        ),
                        start_to_close_timeout=RENDER_TIMEOUT,
                        heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_seconds),
                        retry_policy=RETRY,
                        cancellation_type=WAIT_FOR_CANCEL,
                    )

            results = await _gather_all_or_cancel([render(chunk.index) for chunk in chunks])
            joined = await workflow.execute_activity_method(
                RenderActivities.join_segments,
                JoinInput(request.task_id, [result.key for result in results]),
                start_to_close_timeout=JOIN_TIMEOUT,
                heartbeat_timeout=JOIN_HEARTBEAT_TIMEOUT,
                retry_policy=RETRY,
                cancellation_type=WAIT_FOR_CANCEL,
            )
            poster = await self._poster(request)
            await self._set_state(
                TaskStateUpdate(
                    request.task_id,
                    TaskState.succeeded,
                    video_key=joined.key,
                    video_size=joined.size,
                    frames_done=joined.frames,
                    poster_key=poster.key if poster else None,
                )
            )
            return joined
        except asyncio.CancelledError:
            await self._canceled(request.task_id)
            raise
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                # A cancel that reached the activities first surfaces as their failure.
                await self._canceled(request.task_id)
                raise CancelledError("render canceled") from error
            reason = _root_message(error)
            await self._cleanup(request.task_id)
            await self._set_state(TaskStateUpdate(request.task_id, TaskState.failed, error=reason))
            raise ApplicationError(reason, non_retryable=True) from error

    async def _poster(self, request: RenderRequest) -> PosterResult | None:
        """The poster beside the video; None when it could not be made (the video stands)."""
        if not workflow.patched(POSTER_PATCH):
            return None
        try:
            return await workflow.execute_activity_method(
                RenderActivities.write_poster,
                PosterInput(request.task_id, request.spec),
                start_to_close_timeout=POSTER_TIMEOUT,
                retry_policy=POSTER_RETRY,
                cancellation_type=WAIT_FOR_CANCEL,
            )
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                raise
            workflow.logger.warning("no poster for %s: %s", request.task_id, _root_message(error))
            return None

    async def _canceled(self, task_id: str) -> None:
        # Activities started after the cancel still run (only the earlier ones were cancelled).
        await self._cleanup(task_id)
        await self._set_state(TaskStateUpdate(task_id, TaskState.canceled))

    async def _set_state(self, update: TaskStateUpdate) -> None:
        await workflow.execute_activity_method(
            RenderActivities.update_task_state,
            update,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )

    async def _cleanup(self, task_id: str) -> None:
        await workflow.execute_activity_method(
            RenderActivities.delete_segments,
            CleanupInput(task_id, include_video=True),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )


async def _gather_all_or_cancel(
    coroutines: list[Coroutine[Any, Any, RenderChunkResult]],
) -> list[RenderChunkResult]:
    """Like gather, but the first failure cancels the other chunks (and waits for them)."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _root_message(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error) or type(error).__name__
