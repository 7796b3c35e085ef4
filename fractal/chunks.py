"""Splitting an animation's frames into chunks (light: used by workflows and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    index: int
    first_frame: int
    stop_frame: int  # exclusive

    @property
    def frames(self) -> int:
        return self.stop_frame - self.first_frame


def plan_chunks(total_frames: int, frames_per_chunk: int, multiple_of: int = 1) -> list[Chunk]:
    """Consecutive chunks of at most ``frames_per_chunk`` frames covering every frame once.

    Sizes are balanced (they differ by at most one frame) so no chunk is a short straggler.
    With ``multiple_of`` (the number of workers), the chunk count is rounded up to a multiple
    of it where there are frames enough, so the last round does not leave workers idle:
    120 frames of 24 on 2 workers are 6 chunks of 20, not 5 of 24 (3 rounds, the last on
    one core).
    """
    if total_frames < 1:
        raise ValueError("total_frames must be >= 1")
    if frames_per_chunk < 1:
        raise ValueError("frames_per_chunk must be >= 1")
    if multiple_of < 1:
        raise ValueError("multiple_of must be >= 1")
    count = -(-total_frames // frames_per_chunk)
    count = min(-(-count // multiple_of) * multiple_of, total_frames)
    base, extra = divmod(total_frames, count)
    chunks = []
    first = 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        chunks.append(Chunk(index, first, first + size))
        first += size
    return chunks
