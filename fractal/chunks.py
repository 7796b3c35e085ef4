"""Splitting an animation's frames into chunks that cost about the same to render.

Light (standard library only): the API plans the chunks when a task is submitted, the
workflow rebuilds them from their stops, ``fractal render`` plans its own.
``plan_render_chunks`` is the entry point; the rest are its parts.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fractal.spec import AnimationSpec

# Relative cost of a frame as a function of the escape count n of the critical point 0 under
# z -> z**2 + c: 1 + n / CRITICAL_ITERATIONS_PER_FRAME_COST. Fitted on the standard
# animation rendered and encoded in 10-frame segments: about 15 ms per frame plus 17 us per
# critical iteration (the kernel's share of a frame follows n with a correlation of 0.99;
# the encoder's share is about constant).
CRITICAL_ITERATIONS_PER_FRAME_COST = 900.0


@dataclass(frozen=True)
class Chunk:
    index: int
    first_frame: int
    stop_frame: int  # exclusive

    @property
    def frames(self) -> int:
        return self.stop_frame - self.first_frame


def chunk_count(total_frames: int, frames_per_chunk: int, multiple_of: int = 1) -> int:
    """How many chunks of at most ``frames_per_chunk`` frames (on average) cover the frames.

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
    return min(-(-count // multiple_of) * multiple_of, total_frames)


def chunks_from_stops(stops: Sequence[int]) -> list[Chunk]:
    """Chunks ending (exclusive) at each of ``stops``, the first starting at frame 0."""
    starts = [0, *stops[:-1]]
    return [
        Chunk(index, first, stop)
        for index, (first, stop) in enumerate(zip(starts, stops, strict=True))
    ]


def critical_escape(c: complex, max_iter: int) -> int:
    """Iterations until the orbit of 0 under z -> z**2 + c leaves |z| <= 2 (max_iter: never)."""
    z = 0j
    for n in range(max_iter):
        z = z * z + c
        if z.real * z.real + z.imag * z.imag > 4.0:
            return n
    return max_iter


# Bounds on the estimate's own work (it runs in the API's request path): at most this many
# sampled frames, each following the critical orbit at most this many iterations (worst
# case about 0.1 s of Python).
COST_SAMPLES = 120
COST_ITERATIONS = 1000


def frame_costs(spec: AnimationSpec) -> list[float]:
    """Estimated relative render cost of every frame (pure Python, deterministic).

    A Julia frame is expensive when c is in or near the Mandelbrot set: then many pixels
    escape slowly or not at all. The orbit of the critical point measures exactly that.
    Long animations are sampled (each frame takes the cost of the sample before it), and an
    orbit still bounded after ``COST_ITERATIONS`` counts as never escaping.
    """
    frames = spec.frame_count
    step = -(-frames // COST_SAMPLES)
    limit = min(spec.max_iter, COST_ITERATIONS)
    costs: list[float] = []
    for sample in range(0, frames, step):
        escape = critical_escape(spec.c_at(sample), limit)
        iterations = spec.max_iter if escape >= limit else escape
        cost = 1.0 + iterations / CRITICAL_ITERATIONS_PER_FRAME_COST
        costs.extend([cost] * min(step, frames - sample))
    return costs


def plan_balanced_chunks(costs: Sequence[float], count: int) -> list[Chunk]:
    """``count`` consecutive chunks (fewer if there are fewer frames) of about equal cost.

    Equal-cost chunks finish together whatever order the workers take them in, so the end
    of a render is not one expensive chunk running alone while the other workers idle.
    """
    if not costs:
        raise ValueError("no frames to plan")
    count = max(1, min(count, len(costs)))
    cumulative = list(itertools.accumulate(costs))
    total = cumulative[-1]
    stops: list[int] = []
    for index in range(1, count):
        # The frame boundary closest to the ideal cut, keeping one frame per chunk at least.
        ideal = total * index / count
        stop = bisect.bisect_left(cumulative, ideal)
        if stop > 0 and ideal - cumulative[stop - 1] < cumulative[stop] - ideal:
            stop -= 1
        stop += 1
        low = (stops[-1] if stops else 0) + 1
        high = len(costs) - (count - index)
        stops.append(min(max(stop, low), high))
    stops.append(len(costs))
    return chunks_from_stops(stops)


def plan_render_chunks(
    spec: AnimationSpec,
    frames_per_chunk: int,
    multiple_of: int = 1,
    costs: Sequence[float] | None = None,
) -> list[Chunk]:
    """The chunks to render ``spec`` in: ``chunk_count`` of them (at most
    ``frames_per_chunk`` frames each on average), cut where the estimated costs balance
    (``costs``: ``frame_costs(spec)`` when the caller has them already)."""
    count = chunk_count(spec.frame_count, frames_per_chunk, multiple_of)
    return plan_balanced_chunks(frame_costs(spec) if costs is None else costs, count)
