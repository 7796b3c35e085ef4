"""The render activities as the worker runs them: render one chunk, join the segments,
keep the task row current.

They run in the worker's thread pool (synchronous functions): the Numba kernels release
the GIL, so chunks rendered in parallel threads use the cores without extra processes.
Every activity is idempotent, because Temporal may run one again after a lost worker.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import metrics as render_metrics
from activities.metrics import RenderMetrics
from fractal.db import Task, TaskChunk, chunk_frames_done, session_scope, utcnow
from fractal.engine import RenderCancelled, concat_segments, render_segment
from fractal.engine.stills import ImageFormat, encode_image, fit_size, render_still
from fractal.spec import AnimationSpec, format_validation_error
from fractal.states import FINAL_STATES, TaskState
from fractal.storage import (
    ObjectStore,
    media_type_of,
    poster_key,
    segment_key,
    segments_prefix,
    video_key,
)
from fractal.usage import settle_task
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
    TaskStateUpdate,
)


def activity_names() -> list[str]:
    """The contract's activities: its public methods."""
    return [
        name
        for name, member in vars(RenderActivities).items()
        if callable(member) and not name.startswith("_")
    ]


log = logging.getLogger("fractal.worker")

# The poster is the first frame (what the video shows before it plays), at most this size.
POSTER_MAX_SIZE = (960, 540)

# Seconds between a chunk's heartbeats (a cancel is noticed through them) and progress rows.
# Per frame would cost the worker a quarter more CPU (measured).
REPORT_INTERVAL = 0.5


class WorkerActivities(RenderActivities):
    """The render activities, bound to one object store and database."""

    def __init__(
        self,
        store: ObjectStore,
        sessions: sessionmaker[Session],
        metrics: RenderMetrics | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.metrics = metrics or RenderMetrics()

    def all(self) -> list[Callable[..., object]]:
        """Every activity the contract declares, bound to this object, for the worker."""
        return [getattr(self, name) for name in activity_names()]

    # -- rendering -------------------------------------------------------------------

    @activity.defn
    def render_chunk(self, chunk: RenderChunkInput) -> RenderChunkResult:
        with self.metrics.chunk_running():
            try:
                return self._render_chunk(chunk)
            except Exception as error:
                self.metrics.failed(_failure_reason(error))
                raise

    def _render_chunk(self, chunk: RenderChunkInput) -> RenderChunkResult:
        started = time.monotonic()
        spec = _valid_spec(chunk.spec)
        key = segment_key(chunk.task_id, chunk.chunk_index)
        frames = chunk.stop_frame - chunk.first_frame
        if self.store.exists(key):
            # An earlier attempt uploaded it and then lost its worker before reporting.
            self._write_progress(chunk, frames)
            log.info("chunk %d already uploaded, not rendered again", chunk.chunk_index)
            return RenderChunkResult(key=key, frames=frames, size=0)

        done = 0
        last_report = 0.0
        frames_counter = self.metrics.frames

        def frame_done(_: int) -> None:
            # render_segment calls back from this one thread, frame by frame.
            nonlocal done, last_report
            done += 1
            frames_counter.add(1)
            now = time.monotonic()
            if now - last_report >= REPORT_INTERVAL:
                last_report = now
                activity.heartbeat(done)
                self._write_progress(chunk, done)

        def should_stop() -> bool:
            return activity.is_cancelled() or activity.is_worker_shutdown()

        def keepalive() -> None:
            # Called while a frame is computed (a deep frame's reference orbit, its bands):
            # heartbeat without progress, and stop mid-frame when asked to.
            nonlocal last_report
            now = time.monotonic()
            if now - last_report >= REPORT_INTERVAL:
                last_report = now
                activity.heartbeat(done)
            if should_stop():
                raise RenderCancelled("stopped during a frame")

        with tempfile.TemporaryDirectory(prefix="fractal-chunk-") as scratch:
            path = Path(scratch) / "segment.mp4"
            # Kernels and the one-thread encoder run on this thread: its CPU time is the
            # chunk's, which the user's daily CPU quota is charged (fractal/usage.py).
            cpu_started = time.thread_time()
            try:
                info = render_segment(
                    spec,
                    chunk.first_frame,
                    chunk.stop_frame,
                    path,
                    threads=1,  # one encoder thread per chunk; chunks fill the cores
                    on_frame=frame_done,
                    should_stop=should_stop,
                    keepalive=keepalive,
                )
            except RenderCancelled:
                if activity.is_cancelled():
                    raise CancelledError("render cancelled") from None
                raise WorkerShuttingDown("worker shutting down; chunk will be retried") from None
            cpu_seconds = time.thread_time() - cpu_started
            activity.heartbeat(done)
            size = self.store.put_file(key, path)
        self._write_progress(chunk, frames, cpu_seconds)
        elapsed = time.monotonic() - started
        self.metrics.kernel_seconds.record(info.kernel_seconds)
        self.metrics.encode_seconds.record(info.encode_seconds)
        self.metrics.chunk_seconds.record(elapsed)
        self.metrics.written("segment", size)
        log.info(
            "chunk %d rendered: frames %d..%d, %d bytes in %.2f s (kernel %.2f s, encode %.2f s, "
            "%.2f CPU-seconds)",
            chunk.chunk_index,
            chunk.first_frame,
            chunk.stop_frame - 1,
            size,
            elapsed,
            info.kernel_seconds,
            info.encode_seconds,
            cpu_seconds,
        )
        return RenderChunkResult(key=key, frames=frames, size=size)

    @activity.defn
    def write_poster(self, job: PosterInput) -> PosterResult:
        spec = _valid_spec(job.spec)
        width, height = fit_size(spec.width, spec.height, *POSTER_MAX_SIZE)
        image = encode_image(render_still(spec, 0, width, height), ImageFormat.webp, 85)
        key = poster_key(job.task_id)
        with tempfile.TemporaryDirectory(prefix="fractal-poster-") as scratch:
            path = Path(scratch) / "poster.webp"
            path.write_bytes(image)
            # Overwrites what an earlier attempt stored: a retry never fails on it.
            size = self.store.put_file(key, path, media_type_of(key))
        return PosterResult(key=key, size=size)

    def _write_progress(
        self, chunk: RenderChunkInput, frames_done: int, cpu_seconds: float | None = None
    ) -> None:
        values: dict[str, object] = {"frames_done": frames_done}
        if cpu_seconds is not None:
            values["cpu_seconds"] = cpu_seconds
        statement = insert(TaskChunk).values(
            task_id=uuid.UUID(chunk.task_id), chunk_index=chunk.chunk_index, **values
        )
        statement = statement.on_conflict_do_update(
            index_elements=[TaskChunk.task_id, TaskChunk.chunk_index], set_=values
        )
        try:
            with session_scope(self.sessions) as session:
                if session.get(Task, uuid.UUID(chunk.task_id)) is not None:
                    session.execute(statement)
        except Exception as error:  # progress is informative: never fail a render for it
            activity.logger.warning("progress not recorded: %s", error)

    # -- joining -----------------------------------------------------------------------

    @activity.defn
    def join_segments(self, job: JoinInput) -> JoinResult:
        started = time.monotonic()
        key = video_key(job.task_id)
        with tempfile.TemporaryDirectory(prefix="fractal-join-") as scratch:
            paths = []
            for index, segment in enumerate(job.segment_keys):
                path = Path(scratch) / f"{index:05d}.mp4"
                self.store.get_file(segment, path)
                paths.append(path)
                activity.heartbeat(index)
            output = Path(scratch) / "video.mp4"
            info = concat_segments(paths, output)
            size = self.store.put_file(key, output)
        self.store.delete_prefix(segments_prefix(job.task_id))
        self.metrics.join_seconds.record(time.monotonic() - started)
        self.metrics.written("video", size)
        log.info(
            "video joined from %d segments: %d frames, %d bytes", len(paths), info.frames, size
        )
        return JoinResult(
            key=key, frames=info.frames, duration_seconds=float(info.duration), size=size
        )

    @activity.defn
    def delete_segments(self, job: CleanupInput) -> int:
        if job.include_video:
            self.store.delete(video_key(job.task_id))
            self.store.delete(poster_key(job.task_id))
        return self.store.delete_prefix(segments_prefix(job.task_id))

    # -- bookkeeping -------------------------------------------------------------------

    @activity.defn
    def update_task_state(self, update: TaskStateUpdate) -> bool:
        """Move the task row on; a deleted row (its user is gone) is not an error."""
        with session_scope(self.sessions) as session:
            task = session.scalar(
                select(Task).where(Task.id == uuid.UUID(update.task_id)).with_for_update()
            )
            if task is None or task.state in FINAL_STATES:
                return False
            task.state = update.state
            if update.state == TaskState.running:
                task.started_at = task.started_at or utcnow()
            if update.state in FINAL_STATES:
                task.finished_at = utcnow()
                task.started_at = task.started_at or task.finished_at
            if update.error is not None:
                task.error = update.error[:2000]
            if update.video_key is not None:
                task.video_key = update.video_key
                task.video_size = update.video_size
            if update.poster_key is not None:
                task.poster_key = update.poster_key
            if update.frames_done is not None:
                task.frames_done = update.frames_done
            elif update.state in FINAL_STATES:
                task.frames_done = chunk_frames_done(session, task.id, task.frames_total)
            settle_task(session, task)
        log.info("task is %s%s", update.state, f": {update.error}" if update.error else "")
        return True


class WorkerShuttingDown(ApplicationError):
    """A chunk stopped because its worker is stopping; Temporal retries it elsewhere."""


def _failure_reason(error: BaseException) -> str:
    """The ``reason`` label of a failed render attempt (a small fixed set)."""
    if isinstance(error, ApplicationError) and error.type == INVALID_SPEC_ERROR:
        return render_metrics.INVALID_SPEC
    if isinstance(error, WorkerShuttingDown):
        return render_metrics.WORKER_SHUTDOWN
    if isinstance(error, CancelledError):
        return render_metrics.CANCELLED
    if isinstance(error, OSError) or type(error).__module__.split(".")[0] in ("minio", "urllib3"):
        return render_metrics.STORAGE
    return render_metrics.ERROR


def _valid_spec(fields: dict[str, object]) -> AnimationSpec:
    """The spec, or the non-retryable failure of a spec no worker can render."""
    try:
        return AnimationSpec.model_validate(fields)
    except ValidationError as error:
        raise ApplicationError(
            f"invalid animation spec: {format_validation_error(error)}",
            type=INVALID_SPEC_ERROR,
            non_retryable=True,
        ) from None
