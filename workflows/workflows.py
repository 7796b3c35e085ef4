"""The render workflow: plan chunks, render them in parallel, join, record the result.

Deterministic code only: it imports the light ``fractal.chunks`` and the contracts; the
activities run in the worker (``activities/activities.py``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from fractal.chunks import chunks_from_stops, plan_chunks
    from workflows.contracts import (
        INVALID_SPEC_ERROR,
        RENDER_WORKFLOW,
        CleanupInput,
        JoinInput,
        JoinResult,
        RenderChunkInput,
        RenderChunkResult,
        RenderProgress,
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


@workflow.defn(name=RENDER_WORKFLOW)
class RenderAnimationWorkflow:
    def __init__(self) -> None:
        self._progress = RenderProgress(state="queued", chunks_total=0, chunks_done=0,
                                        frames_total=0)  # fmt: skip

    @workflow.query
    def progress(self) -> RenderProgress:
        """Chunks and frames finished so far (frames of chunks still rendering excluded)."""
        return self._progress

    @workflow.run
    async def run(self, request: RenderRequest) -> JoinResult:
        chunks = (
            chunks_from_stops(request.chunk_stops)
            if request.chunk_stops
            else plan_chunks(request.frames_total, request.frames_per_chunk)
        )
        self._progress = RenderProgress(
            state="running",
            chunks_total=len(chunks),
            chunks_done=0,
            frames_total=request.frames_total,
        )
        try:
            await self._set_state(TaskStateUpdate(request.task_id, "running"))
            limit = asyncio.Semaphore(max(1, request.max_parallel_chunks))

            async def render(chunk_index: int) -> RenderChunkResult:
                chunk = chunks[chunk_index]
                async with limit:
                    result: RenderChunkResult = await workflow.execute_activity(
                        "render_chunk",
                        RenderChunkInput(
                            request.task_id,
                            request.spec,
                            chunk.index,
                            chunk.first_frame,
                            chunk.stop_frame,
                        ),
                        result_type=RenderChunkResult,
                        # A chunk is about a second of video; generous for big frames.
                        start_to_close_timeout=timedelta(minutes=30),
                        heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_seconds),
                        retry_policy=RETRY,
                        # Wait for the activity to stop, so cleanup runs after its last write.
                        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    )
                self._progress.chunks_done += 1
                self._progress.frames_done += chunk.frames
                return result

            results = await _gather_all_or_cancel([render(c.index) for c in chunks])
            self._progress.state = "joining"
            joined: JoinResult = await workflow.execute_activity(
                "join_segments",
                JoinInput(request.task_id, [result.key for result in results]),
                result_type=JoinResult,
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RETRY,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            await self._set_state(
                TaskStateUpdate(
                    request.task_id,
                    "succeeded",
                    video_key=joined.key,
                    video_size=joined.size,
                    frames_done=joined.frames,
                )
            )
            self._progress.state = "succeeded"
            return joined
        except asyncio.CancelledError:
            await self._canceled(request.task_id)
            raise
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                # A cancel that reached the activities first surfaces as their failure.
                await self._canceled(request.task_id)
                raise CancelledError("render canceled") from error
            self._progress.state = "failed"
            reason = _root_message(error)
            await self._cleanup(request.task_id)
            await self._set_state(TaskStateUpdate(request.task_id, "failed", error=reason))
            raise ApplicationError(reason, non_retryable=True) from error

    async def _canceled(self, task_id: str) -> None:
        # Activities started after the cancel still run (only the earlier ones were cancelled).
        self._progress.state = "canceled"
        await self._cleanup(task_id)
        await self._set_state(TaskStateUpdate(task_id, "canceled"))

    async def _set_state(self, update: TaskStateUpdate) -> None:
        await workflow.execute_activity(
            "update_task_state",
            update,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )

    async def _cleanup(self, task_id: str) -> None:
        await workflow.execute_activity(
            "delete_segments",
            CleanupInput(task_id, include_video=True),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )


async def _gather_all_or_cancel(
    coroutines: list,  # type: ignore[type-arg]
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
