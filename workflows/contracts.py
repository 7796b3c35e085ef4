"""What the render workflow and its activities exchange, and the activities it calls.

Plain dataclasses of small values (ids, object keys, counts): Temporal payloads are capped
at 2 MB, so frames and segments never travel through it, only their storage keys.

``RenderActivities`` declares the activities (names, input and result types) without
implementing them, so the workflow calls them typed while importing nothing heavy; the
worker's implementation (``activities.render.WorkerActivities``) subclasses it.
This module imports only the standard library, Temporal's ``activity`` decorator and the
light ``fractal.states``, so workflow code may import it inside the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import activity

from fractal.states import TaskState

# ApplicationError type of a spec no worker can render: failing again would not help.
INVALID_SPEC_ERROR = "InvalidSpec"
# ApplicationError type of an object store that refuses writes for good (read-only, full,
# permission denied): retrying the same write cannot help, so the task fails at once.
STORAGE_REFUSED_ERROR = "StorageRefused"
# ApplicationError type of an input that is gone for good (a segment a join needs).
MISSING_INPUT_ERROR = "MissingInput"


@dataclass
class RenderRequest:
    task_id: str
    spec: dict[str, Any]
    # Where each chunk ends (exclusive), cut by estimated cost (fractal.chunks); the last
    # stop is the frame count.
    chunk_stops: list[int]
    max_parallel_chunks: int
    # Seconds without a heartbeat after which a render or join attempt counts as lost (its
    # worker died).
    heartbeat_timeout_seconds: float
    # The task queue of the short steps (state updates, join, poster, clean-up), served by
    # slots of their own; None (workflows started before it existed): the workflow's queue.
    bookkeeping_task_queue: str | None = None
    # Chunks of tasks with different keys share the workers fairly where the Temporal
    # server balances fairness keys (the owner's id); ignored elsewhere.
    fairness_key: str | None = None


@dataclass
class RenderChunkInput:
    task_id: str
    spec: dict[str, Any]
    chunk_index: int
    first_frame: int
    stop_frame: int


@dataclass
class RenderChunkResult:
    key: str
    frames: int
    size: int


@dataclass
class JoinInput:
    task_id: str
    # One key per chunk, in order (``fractal.storage.segment_key``): the chunk's segment, or
    # the stem of the parts a checkpointed chunk was stored in.
    segment_keys: list[str]
    # The video's frame count: a video already stored with it is not joined again.
    frames_total: int | None = None


@dataclass
class JoinResult:
    key: str
    frames: int
    duration_seconds: float
    size: int


@dataclass
class PosterInput:
    task_id: str
    spec: dict[str, Any]


@dataclass
class PosterResult:
    key: str
    size: int


@dataclass
class CleanupInput:
    task_id: str
    # Also delete the video and its poster, unless the task's row records them as its
    # result (a commit that won a race with a cancel is never undone).
    include_video: bool = False


@dataclass
class TaskStateUpdate:
    task_id: str
    state: TaskState
    error: str | None = None
    video_key: str | None = None
    video_size: int | None = None
    frames_done: int | None = None
    poster_key: str | None = None


class RenderActivities:
    """The activities of a render, as the workflow sees them (the worker implements them).

    Each method is an activity named after it; an implementation overrides every one and
    decorates the override with ``@activity.defn`` again.
    """

    @activity.defn
    def render_chunk(self, chunk: RenderChunkInput) -> RenderChunkResult:
        """Render, encode and store one chunk's segment; idempotent."""
        raise NotImplementedError

    @activity.defn
    def join_segments(self, job: JoinInput) -> JoinResult:
        """Join the segments into the task's video without re-encoding; idempotent."""
        raise NotImplementedError

    @activity.defn
    def write_poster(self, job: PosterInput) -> PosterResult:
        """Render the animation's first frame as the poster image beside the video;
        idempotent (a retry overwrites it)."""
        raise NotImplementedError

    @activity.defn
    def delete_segments(self, job: CleanupInput) -> int:
        """Delete the task's segments (and with ``include_video`` its video and poster,
        unless the row records them); idempotent."""
        raise NotImplementedError

    @activity.defn
    def update_task_state(self, update: TaskStateUpdate) -> str | None:
        """Record a state change in the task's row; the row's state afterwards (None: no
        row). A final state is never left, and ``succeeded`` is refused (``canceled`` is
        recorded instead) once a cancel was requested."""
        raise NotImplementedError
