"""Inputs and outputs of the render workflow and its activities.

Plain dataclasses of small values (ids, object keys, counts): Temporal payloads are capped
at 2 MB, so frames and segments never travel through it, only their storage keys. This
module imports nothing but the standard library, so workflow code may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RENDER_WORKFLOW = "RenderAnimationWorkflow"
INVALID_SPEC_ERROR = "InvalidSpec"


@dataclass
class RenderRequest:
    task_id: str
    spec: dict[str, Any]
    frames_total: int
    frames_per_chunk: int
    max_parallel_chunks: int = 16
    # Where each chunk ends (exclusive), cut by estimated cost (fractal.chunks); empty:
    # equal chunks of frames_per_chunk.
    chunk_stops: list[int] = field(default_factory=list)
    # Seconds without a heartbeat after which a render attempt counts as lost (worker died).
    heartbeat_timeout_seconds: float = 20.0


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
    segment_keys: list[str]


@dataclass
class JoinResult:
    key: str
    frames: int
    duration_seconds: float
    size: int


@dataclass
class CleanupInput:
    task_id: str
    # Also delete the final video: a cancel can race a join that was about to store it.
    include_video: bool = False


@dataclass
class TaskStateUpdate:
    task_id: str
    state: str
    error: str | None = None
    video_key: str | None = None
    video_size: int | None = None
    frames_done: int | None = None


@dataclass
class RenderProgress:
    state: str
    chunks_total: int
    chunks_done: int
    frames_total: int
    frames_done: int = 0
    errors: list[str] = field(default_factory=list)
