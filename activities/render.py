"""The render activities as the worker runs them: render one chunk, join the segments,
keep the task row current.

They run in the worker's thread pool (synchronous functions): the Numba kernels release
the GIL, so chunks rendered in parallel threads use the cores without extra processes.
Every activity is idempotent, because Temporal may run one again after a lost worker.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import metrics as render_metrics
from activities.heartbeat import heartbeat_timeout, heartbeating, interval_for
from activities.metrics import RenderMetrics
from activities.scratch import Scratch, default_scratch_root
from fractal.db import Task, TaskChunk, chunk_frames_done, session_scope, utcnow
from fractal.engine import RenderCancelled, concat_segments, probe_video, render_segment
from fractal.engine.stills import ImageFormat, encode_image, fit_size, render_still
from fractal.spec import AnimationSpec, format_validation_error
from fractal.states import ACTIVE_STATES, FINAL_STATES, TaskState
from fractal.storage import (
    ObjectStore,
    media_type_of,
    part_frames,
    permanent_failure,
    poster_key,
    segment_key,
    segment_part_key,
    segment_parts_prefix,
    segments_prefix,
    video_key,
)
from fractal.usage import settle_task
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

# Seconds between a chunk's progress rows (per frame would cost the worker a quarter more
# CPU, measured); heartbeats go from a thread of their own (activities/heartbeat.py).
REPORT_INTERVAL = 0.5
# A chunk that renders longer than this is stored in parts, each a complete segment: a
# retry after a lost worker resumes after the last part stored instead of starting over.
DEFAULT_CHECKPOINT_SECONDS = 15.0


class WorkerActivities(RenderActivities):
    """The render activities, bound to one object store and database."""

    def __init__(
        self,
        store: ObjectStore,
        sessions: sessionmaker[Session],
        metrics: RenderMetrics | None = None,
        *,
        scratch: Scratch | None = None,
        checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.metrics = metrics or RenderMetrics()
        self._scratch = scratch
        self.checkpoint_seconds = checkpoint_seconds

    @property
    def scratch(self) -> Scratch:
        if self._scratch is None:
            self._scratch = Scratch(default_scratch_root())
        return self._scratch

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
        if self._stored(key):
            # An earlier attempt uploaded it and then lost its worker before reporting.
            self._write_progress(chunk, frames)
            log.info("chunk %d already uploaded, not rendered again", chunk.chunk_index)
            return RenderChunkResult(key=key, frames=frames, size=0)
        first = self._resume_point(chunk, key)
        if first > chunk.first_frame:
            log.info(
                "chunk %d resumes at frame %d: frames %d..%d were stored by an earlier attempt",
                chunk.chunk_index,
                first,
                chunk.first_frame,
                first - 1,
            )
        done = first - chunk.first_frame
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
                self._write_progress(chunk, done)

        def should_stop() -> bool:
            return activity.is_cancelled() or activity.is_worker_shutdown()

        def stop_mid_frame() -> None:
            # Called while a frame is computed (a deep frame's reference orbit, its bands):
            # a cancel or a shutdown need not wait for the frame to end. The heartbeat
            # thread below reports meanwhile.
            if should_stop():
                raise RenderCancelled("stopped during a frame")

        part_started = time.monotonic()

        def checkpoint_due() -> bool:
            return time.monotonic() - part_started >= self.checkpoint_seconds

        size = 0
        kernel_seconds = encode_seconds = cpu_seconds = 0.0
        interval = interval_for(heartbeat_timeout())
        with (
            heartbeating(interval, lambda: done),
            self.scratch.temporary("chunk-") as scratch,
        ):
            if done:
                self._write_progress(chunk, done)
            while first < chunk.stop_frame:
                part_started = time.monotonic()
                path = scratch / f"{first:06d}.mp4"
                # Kernels and the one-thread encoder run on this thread: its CPU time is
                # the chunk's, which the user's daily CPU quota is charged (fractal/usage.py).
                cpu_started = time.thread_time()
                try:
                    info = render_segment(
                        spec,
                        first,
                        chunk.stop_frame,
                        path,
                        threads=1,  # one encoder thread per chunk; chunks fill the cores
                        on_frame=frame_done,
                        should_stop=should_stop,
                        end_early=checkpoint_due,
                        keepalive=stop_mid_frame,
                    )
                except RenderCancelled:
                    if activity.is_cancelled():
                        raise CancelledError("render cancelled") from None
                    raise WorkerShuttingDown(
                        "worker shutting down; chunk will be retried"
                    ) from None
                part_cpu = time.thread_time() - cpu_started
                whole = first == chunk.first_frame and info.stop_frame == chunk.stop_frame
                part = (
                    key
                    if whole
                    else segment_part_key(chunk.task_id, chunk.chunk_index, first, info.stop_frame)
                )
                size += self._put(part, path)
                path.unlink()
                self._write_progress(chunk, info.stop_frame - chunk.first_frame, part_cpu)
                kernel_seconds += info.kernel_seconds
                encode_seconds += info.encode_seconds
                cpu_seconds += part_cpu
                first = info.stop_frame
        elapsed = time.monotonic() - started
        self.metrics.kernel_seconds.record(kernel_seconds)
        self.metrics.encode_seconds.record(encode_seconds)
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
            kernel_seconds,
            encode_seconds,
            cpu_seconds,
        )
        return RenderChunkResult(key=key, frames=frames, size=size)

    def _resume_point(self, chunk: RenderChunkInput, key: str) -> int:
        """The first frame no stored part of the chunk covers (parts chained from its start)."""
        first = chunk.first_frame
        for start, stop in _part_chain(self._list(segment_parts_prefix(key))):
            if start == first and stop <= chunk.stop_frame:
                first = stop
        return first

    @activity.defn
    def write_poster(self, job: PosterInput) -> PosterResult:
        spec = _valid_spec(job.spec)
        width, height = fit_size(spec.width, spec.height, *POSTER_MAX_SIZE)
        image = encode_image(render_still(spec, 0, width, height), ImageFormat.webp, 85)
        key = poster_key(job.task_id)
        with self.scratch.temporary("poster-") as scratch:
            path = scratch / "poster.webp"
            path.write_bytes(image)
            # Overwrites what an earlier attempt stored: a retry never fails on it.
            size = self._put(key, path, media_type_of(key))
        return PosterResult(key=key, size=size)

    def _write_progress(
        self, chunk: RenderChunkInput, frames_done: int, cpu_seconds: float | None = None
    ) -> None:
        """Record the chunk's frames done (never less than recorded: a retried chunk does
        not move the task's progress back) and add the CPU of a part it stored."""
        statement = insert(TaskChunk).values(
            task_id=uuid.UUID(chunk.task_id),
            chunk_index=chunk.chunk_index,
            frames_done=frames_done,
            cpu_seconds=cpu_seconds or 0.0,
        )
        updates: dict[str, object] = {
            "frames_done": func.greatest(TaskChunk.frames_done, statement.excluded.frames_done)
        }
        if cpu_seconds is not None:
            updates["cpu_seconds"] = TaskChunk.cpu_seconds + statement.excluded.cpu_seconds
        statement = statement.on_conflict_do_update(
            index_elements=[TaskChunk.task_id, TaskChunk.chunk_index], set_=updates
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
        """Join the chunks' segments into the video and store it; a video already stored
        (by an attempt whose worker was lost after the upload) is taken as it is, so a
        retry needs no segment. The segments are deleted after the commit, not here."""
        started = time.monotonic()
        key = video_key(job.task_id)
        interval = interval_for(heartbeat_timeout())
        with heartbeating(interval), self.scratch.temporary("join-") as scratch:
            stored = self._stored_video(key, job, scratch)
            if stored is not None:
                log.info("video already joined by an earlier attempt: %d frames", stored.frames)
                return stored
            paths = []
            for index, segment in enumerate(self._segment_objects(job)):
                path = scratch / f"{index:05d}.mp4"
                self._get(segment, path)
                paths.append(path)
            output = scratch / "video.mp4"
            info = concat_segments(paths, output)
            if job.frames_total is not None and info.frames != job.frames_total:
                raise ApplicationError(
                    f"the segments hold {info.frames} frames, the animation has {job.frames_total}",
                    type=MISSING_INPUT_ERROR,
                    non_retryable=True,
                )
            size = self._put(key, output)
        self.metrics.join_seconds.record(time.monotonic() - started)
        self.metrics.written("video", size)
        log.info(
            "video joined from %d segments: %d frames, %d bytes", len(paths), info.frames, size
        )
        return JoinResult(
            key=key, frames=info.frames, duration_seconds=float(info.duration), size=size
        )

    def _stored_video(self, key: str, job: JoinInput, scratch: Path) -> JoinResult | None:
        if not self._stored(key):
            return None
        path = scratch / "stored.mp4"
        self._get(key, path)
        try:
            info = probe_video(path)
        except Exception as error:  # not a video we wrote: join it again over it
            log.warning("the stored video cannot be read (%s): joining again", error)
            return None
        if job.frames_total is not None and info.frames != job.frames_total:
            log.warning(
                "the stored video has %d frames, not %d: joining again",
                info.frames,
                job.frames_total,
            )
            return None
        path.unlink()
        return JoinResult(
            key=key, frames=info.frames, duration_seconds=float(info.duration), size=info.size
        )

    def _segment_objects(self, job: JoinInput) -> Iterator[str]:
        """Each chunk's segment, or the parts it was stored in, in frame order."""
        for segment in job.segment_keys:
            if self._stored(segment):
                yield segment
                continue
            parts = self._list(segment_parts_prefix(segment))
            chain = _part_chain(parts)
            if not chain:
                raise ApplicationError(
                    f"segment {segment.rsplit('/', 1)[-1]} is missing from the store: the "
                    "video cannot be joined",
                    type=MISSING_INPUT_ERROR,
                    non_retryable=True,
                )
            by_frames = {part_frames(part): part for part in parts}
            yield from (by_frames[frames] for frames in chain)

    @activity.defn
    def delete_segments(self, job: CleanupInput) -> int:
        deleted = 0
        if job.include_video:
            for key in (video_key(job.task_id), poster_key(job.task_id)):
                if key not in self._fence_result(job.task_id):
                    self._delete(key)
                    deleted += 1
        return deleted + self._delete_prefix(segments_prefix(job.task_id))

    def _fence_result(self, task_id: str) -> set[str]:
        """The objects the task's row records as its result (kept by any clean-up). An
        active row is fenced first: no result can be committed after its objects are
        deleted."""
        with session_scope(self.sessions) as session:
            task = session.scalar(
                select(Task).where(Task.id == uuid.UUID(task_id)).with_for_update()
            )
            if task is None:
                return set()
            if task.state == TaskState.succeeded:
                return {key for key in (task.video_key, task.poster_key) if key}
            if task.state in ACTIVE_STATES and task.cancel_requested_at is None:
                task.cancel_requested_at = utcnow()
            return set()

    # -- the object store, its refusals made permanent --------------------------------

    def _put(self, key: str, path: Path, content_type: str = "video/mp4") -> int:
        with _store_refusals("store"):
            return self.store.put_file(key, path, content_type)

    def _get(self, key: str, path: Path) -> None:
        try:
            with _store_refusals("read"):
                self.store.get_file(key, path)
        except (FileNotFoundError, KeyError):
            raise _missing(key) from None
        except Exception as error:
            if getattr(error, "code", None) in ("NoSuchKey", "NoSuchObject"):
                raise _missing(key) from None
            raise

    def _stored(self, key: str) -> bool:
        with _store_refusals("read"):
            return self.store.exists(key)

    def _list(self, prefix: str) -> list[str]:
        with _store_refusals("list"):
            return self.store.list_keys(prefix)

    def _delete(self, key: str) -> None:
        with _store_refusals("delete"):
            self.store.delete(key)

    def _delete_prefix(self, prefix: str) -> int:
        with _store_refusals("delete"):
            return self.store.delete_prefix(prefix)

    # -- bookkeeping -------------------------------------------------------------------

    @activity.defn
    def update_task_state(self, update: TaskStateUpdate) -> str | None:
        """Move the task row on; a deleted row (its user is gone) is not an error."""
        with session_scope(self.sessions) as session:
            task = session.scalar(
                select(Task).where(Task.id == uuid.UUID(update.task_id)).with_for_update()
            )
            if task is None:
                return None
            if task.state in FINAL_STATES:
                return task.state
            state = update.state
            if state == TaskState.succeeded and task.cancel_requested_at is not None:
                # The cancel was asked for before the result could be committed: it wins.
                state = TaskState.canceled
            task.state = state
            if state == TaskState.running:
                task.started_at = task.started_at or utcnow()
            if state in FINAL_STATES:
                task.finished_at = utcnow()
                task.started_at = task.started_at or task.finished_at
            if update.error is not None:
                task.error = update.error[:2000]
            if state == TaskState.succeeded:
                task.video_key = update.video_key
                task.video_size = update.video_size
                task.poster_key = update.poster_key
            if state == TaskState.succeeded and update.frames_done is not None:
                task.frames_done = update.frames_done
            elif state in FINAL_STATES:
                task.frames_done = chunk_frames_done(session, task.id, task.frames_total)
            settle_task(session, task)
        log.info("task is %s%s", state, f": {update.error}" if update.error else "")
        return state


def _part_chain(keys: list[str]) -> list[tuple[int, int]]:
    """The parts that follow one another from the first one stored, as (first, stop)."""
    parts = sorted(frames for key in keys if (frames := part_frames(key)) is not None)
    chain: list[tuple[int, int]] = []
    for first, stop in parts:
        if not chain or first == chain[-1][1]:
            chain.append((first, stop))
        elif first == chain[-1][0] and stop > chain[-1][1]:
            chain[-1] = (first, stop)  # a longer part from the same frame (a later attempt)
    return chain


def _missing(key: str) -> ApplicationError:
    return ApplicationError(
        f"{key.rsplit('/', 1)[-1]} is missing from the store",
        type=MISSING_INPUT_ERROR,
        non_retryable=True,
    )


@contextlib.contextmanager
def _store_refusals(operation: str) -> Iterator[None]:
    """Turn a store error that retrying cannot mend (read-only, full, access denied) into
    a non-retryable failure whose message the task's ``error`` shows."""
    try:
        yield
    except ApplicationError:
        raise
    except Exception as error:
        reason = permanent_failure(error)
        if reason is None:
            raise
        # The task's error says why in words; the path or address is for the log only.
        log.warning("the object store refused to %s: %r", operation, error)
        raise ApplicationError(
            f"the object store refused to {operation}: {reason}",
            type=STORAGE_REFUSED_ERROR,
            non_retryable=True,
        ) from None


class WorkerShuttingDown(ApplicationError):
    """A chunk stopped because its worker is stopping; Temporal retries it elsewhere."""


def _failure_reason(error: BaseException) -> str:
    """The ``reason`` label of a failed render attempt (a small fixed set)."""
    if isinstance(error, ApplicationError) and error.type == INVALID_SPEC_ERROR:
        return render_metrics.INVALID_SPEC
    if isinstance(error, ApplicationError) and error.type == STORAGE_REFUSED_ERROR:
        return render_metrics.STORAGE
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
