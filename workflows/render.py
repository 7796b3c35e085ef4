"""The render workflow: render the planned chunks, join them, commit the result, clean up.

Deterministic code only: it imports the light contracts, chunk planning and task states;
the activities run in the worker (``activities/render.py``).

What it promises (docs/durability.md):

* a committed result is never undone: the commit (the row becomes ``succeeded`` with the
  video's key) runs to its end whatever cancel arrives meanwhile, and every clean-up keeps
  the objects the row records;
* the outcome is recorded before anything is cleaned up, and the clean-up is bounded, so a
  broken store never keeps a task ``running``;
* join, commit and the deletion of the join's inputs are separate steps, each safe to repeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from fractal.chunks import Chunk, chunks_from_stops
    from fractal.states import TaskState
    from workflows.contracts import (
        INVALID_SPEC_ERROR,
        MISSING_INPUT_ERROR,
        STORAGE_REFUSED_ERROR,
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

T = TypeVar("T")

# Transient faults (a storage hiccup, a lost worker) retry with exponential backoff; what
# retrying cannot mend (an invalid spec, a store refusing writes) fails at once.
PERMANENT_ERRORS = [INVALID_SPEC_ERROR, STORAGE_REFUSED_ERROR, MISSING_INPUT_ERROR]
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=PERMANENT_ERRORS,
)
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
# A state is recorded however long the database is away: no attempt limit.
RECORD_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
# Clean-up is bounded: what it leaves behind, the API's sweep of orphaned objects removes.
CLEANUP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
    non_retryable_error_types=PERMANENT_ERRORS,
)
# A chunk is about a second of video; generous for big frames.
RENDER_TIMEOUT = timedelta(minutes=30)
JOIN_TIMEOUT = timedelta(minutes=30)
JOIN_HEARTBEAT_TIMEOUT = timedelta(minutes=2)  # before the durable version: per segment
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
# Workflows started before the durable finish replay the first version (_run_first_version).
DURABLE_PATCH = "durable-finish"
# Wait for a cancelled activity to stop, so the cleanup runs after its last write.
WAIT_FOR_CANCEL = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED


@workflow.defn
class RenderAnimationWorkflow:
    def __init__(self) -> None:
        self._cancel_requested = False
        # The queue of the short steps (None: the workflow's own), set when the run starts.
        self._bookkeeping_queue: str | None = None

    @workflow.run
    async def run(self, request: RenderRequest) -> JoinResult | None:
        """The video's join result; None when the task ended without one (canceled before
        it started, deleted, or its cancel was committed instead of the result)."""
        if not workflow.patched(DURABLE_PATCH):
            return await self._run_first_version(request)
        task_id = request.task_id
        self._bookkeeping_queue = request.bookkeeping_task_queue
        # Chunks are scheduled in order, all at once up to the limit, so the task queue
        # serves tasks first come, first served.
        slots = asyncio.Semaphore(max(1, request.max_parallel_chunks))
        try:
            state = await self._record(TaskStateUpdate(task_id, TaskState.running))
            if state != TaskState.running:
                # Canceled while it waited for a worker, or deleted: nothing to render.
                workflow.logger.info("task %s is %s: not rendered", task_id, state or "gone")
                return None
            results = await _gather_all_or_cancel(
                [
                    self._render(request, chunk, slots)
                    for chunk in chunks_from_stops(request.chunk_stops)
                ]
            )
            joined = await self._join(request, results)
            poster = await self._poster(request)
        except asyncio.CancelledError:
            await self._finish(task_id, TaskState.canceled)
            raise
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                # A cancel that reached the activities first surfaces as their failure.
                await self._finish(task_id, TaskState.canceled)
                raise CancelledError("render canceled") from error
            reason = _root_message(error)
            await self._finish(task_id, TaskState.failed, reason)
            raise ApplicationError(reason, non_retryable=True) from error
        return await self._commit(request, joined, poster)

    # -- the steps ---------------------------------------------------------------------

    async def _render(
        self, request: RenderRequest, chunk: Chunk, slots: asyncio.Semaphore
    ) -> RenderChunkResult:
        async with slots:
            return await workflow.execute_activity_method(
                RenderActivities.render_chunk,
                RenderChunkInput(
                    request.task_id, request.spec, chunk.index, chunk.first_frame, chunk.stop_frame
                ),
                start_to_close_timeout=RENDER_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_seconds),
                retry_policy=RETRY,
                cancellation_type=WAIT_FOR_CANCEL,
                priority=Priority(fairness_key=request.fairness_key),
            )

    async def _join(self, request: RenderRequest, results: list[RenderChunkResult]) -> JoinResult:
        return await workflow.execute_activity_method(
            RenderActivities.join_segments,
            JoinInput(
                request.task_id,
                [result.key for result in results],
                frames_total=request.chunk_stops[-1],
            ),
            task_queue=self._bookkeeping_queue,
            start_to_close_timeout=JOIN_TIMEOUT,
            # The join heartbeats through download, concat and upload: a lost worker is
            # noticed as fast as a lost render.
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_seconds),
            retry_policy=RETRY,
            cancellation_type=WAIT_FOR_CANCEL,
        )

    async def _poster(self, request: RenderRequest) -> PosterResult | None:
        """The poster beside the video; None when it could not be made (the video stands)."""
        if not workflow.patched(POSTER_PATCH):
            return None
        try:
            return await workflow.execute_activity_method(
                RenderActivities.write_poster,
                PosterInput(request.task_id, request.spec),
                task_queue=self._bookkeeping_queue,
                start_to_close_timeout=POSTER_TIMEOUT,
                retry_policy=POSTER_RETRY,
                cancellation_type=WAIT_FOR_CANCEL,
            )
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                raise
            workflow.logger.warning("no poster for %s: %s", request.task_id, _root_message(error))
            return None

    async def _commit(
        self, request: RenderRequest, joined: JoinResult, poster: PosterResult | None
    ) -> JoinResult | None:
        """Record the result, then delete the join's inputs. Runs to its end whatever
        cancel arrives meanwhile: the row decides (a cancel requested before the commit
        wins, one after it is too late)."""
        task_id = request.task_id
        state = await self._shielded(
            self._record(
                TaskStateUpdate(
                    task_id,
                    TaskState.succeeded,
                    video_key=joined.key,
                    video_size=joined.size,
                    frames_done=joined.frames,
                    poster_key=poster.key if poster else None,
                )
            )
        )
        if state == TaskState.succeeded:
            await self._shielded(self._cleanup(CleanupInput(task_id)))
            return joined
        # Not committed: a cancel was requested first, or the service gave the task up.
        workflow.logger.info("task %s is %s: its video is not kept", task_id, state or "gone")
        await self._shielded(self._cleanup(CleanupInput(task_id, include_video=True)))
        if self._cancel_requested:
            raise asyncio.CancelledError
        return None

    async def _finish(self, task_id: str, state: TaskState, reason: str | None = None) -> None:
        """Record the end first, then clean up (bounded): a store that refuses every delete
        never keeps the task active."""
        if state == TaskState.canceled:
            self._cancel_requested = True
        recorded = await self._shielded(self._record(TaskStateUpdate(task_id, state, error=reason)))
        # A row that recorded its video keeps it (the commit won).
        cleanup = CleanupInput(task_id, include_video=recorded != TaskState.succeeded)
        await self._shielded(self._cleanup(cleanup))

    # -- bookkeeping -------------------------------------------------------------------

    async def _record(self, update: TaskStateUpdate) -> str | None:
        return await workflow.execute_activity_method(  # type: ignore[no-any-return]
            RenderActivities.update_task_state,
            update,
            task_queue=self._bookkeeping_queue,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )

    async def _cleanup(self, job: CleanupInput) -> None:
        try:
            await workflow.execute_activity_method(
                RenderActivities.delete_segments,
                job,
                task_queue=self._bookkeeping_queue,
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=CLEANUP_RETRY,
            )
        except ActivityError as error:
            # Left for the API's sweep of orphaned objects; the outcome is recorded already.
            workflow.logger.warning(
                "clean-up of %s left objects behind: %s", job.task_id, _root_message(error)
            )

    async def _shielded(self, step: Coroutine[Any, Any, T]) -> T:
        """Run ``step`` to its end even when the workflow is cancelled meanwhile (only the
        workflow's own task is cancelled; the shielded step goes on), remembering the
        cancel."""
        task = asyncio.ensure_future(step)
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.done():
                    raise
                self._cancel_requested = True

    # -- workflows started before the durable finish -------------------------------------

    async def _run_first_version(self, request: RenderRequest) -> JoinResult:
        """The workflow as it was (replayed by workflows started before DURABLE_PATCH); its
        clean-up is made safe by the activities (a recorded video is never deleted)."""
        chunks = chunks_from_stops(request.chunk_stops)
        try:
            await self._set_state_v1(TaskStateUpdate(request.task_id, TaskState.running))
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
            await self._set_state_v1(
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
            await self._canceled_v1(request.task_id)
            raise
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                await self._canceled_v1(request.task_id)
                raise CancelledError("render canceled") from error
            reason = _root_message(error)
            await self._cleanup_v1(request.task_id)
            await self._set_state_v1(
                TaskStateUpdate(request.task_id, TaskState.failed, error=reason)
            )
            raise ApplicationError(reason, non_retryable=True) from error

    async def _canceled_v1(self, task_id: str) -> None:
        await self._cleanup_v1(task_id)
        await self._set_state_v1(TaskStateUpdate(task_id, TaskState.canceled))

    async def _set_state_v1(self, update: TaskStateUpdate) -> None:
        await workflow.execute_activity_method(
            RenderActivities.update_task_state,
            update,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )

    async def _cleanup_v1(self, task_id: str) -> None:
        await workflow.execute_activity_method(
            RenderActivities.delete_segments,
            CleanupInput(task_id, include_video=True),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RECORD_RETRY,
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
