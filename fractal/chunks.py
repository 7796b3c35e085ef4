"""Splitting an animation's frames into chunks that cost about the same to render.

Light (standard library only): the API plans the chunks when a task is submitted, the
workflow rebuilds them from their stops, ``fractal render`` plans its own.
``plan_render_chunks`` is the entry point; the rest are its parts.
"""

from __future__ import annotations

import bisect
import cmath
import itertools
import math
from collections.abc import Callable, Sequence
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

# Views (parameter-plane fractals, or any moving camera) are estimated from the mean escape
# count of a few probe points per sampled frame: a frame costs
# 1 + mean count / ITERATIONS_PER_FRAME_COST, where an iteration of every pixel costs
# 1/45 of a simple frame in float64 (0.7 ns per pixel iteration against 31 ns per pixel
# for colouring and encoding, measured at 800x600) and 1/22 by perturbation: along the
# issue's 400x300 zoom to 1e-30 at gaia the deep frames measured 2.6 - 3.6 ms per unit of
# cost at 1/11, against 5.2 - 5.9 for the float64 frames, after the lane-parallel
# perturbation kernel (the mean counts of deep frames are extrapolated, so this factor
# absorbs that estimate's bias too).
FLOAT_ITERATIONS_PER_FRAME_COST = 45.0
DEEP_ITERATIONS_PER_FRAME_COST = 22.0
# The probe: PROBE_FRAMES frames spread over the animation, a PROBE_COLUMNS x PROBE_ROWS
# grid of points each, PROBE_ITERATIONS at most per point (worst case about 0.1 s).
PROBE_FRAMES = 12
PROBE_COLUMNS, PROBE_ROWS = 4, 3
PROBE_ITERATIONS = 2000
# An interior point is found periodic by the kernels' cycle checks after about this many,
# in the families where those checks find interiors quickly.
INTERIOR_ITERATIONS = 100
CYCLE_CHECKED = frozenset({"julia", "mandelbrot"})
# The families whose pixels iterate with the frame's c: the orbit of their critical point
# (0) says how slowly their pixels escape, as for Julia's.
JULIA_KINDS = frozenset({"julia", "burning_ship_julia", "tricorn_julia", "multibrot_julia"})
# Below float64's reach the probe cannot run: the mean count is extrapolated along the
# zoom from the probed frames, or, with none, taken as this many per decade of depth.
ITERATIONS_PER_DECADE = 90.0


def costs_follow_critical_orbit(spec: AnimationSpec) -> bool:
    """Whether ``frame_costs`` follows Julia's critical orbit (a still camera on a Julia
    set) rather than probing the view: the two scales differ in what a unit of cost hides
    (a critical orbit cannot tell a cheap interior from a parabolic one)."""
    from fractal.spec import StillCamera

    return spec.fractal.value in JULIA_KINDS and isinstance(spec.camera, StillCamera)


def frame_costs(spec: AnimationSpec) -> list[float]:
    """Estimated relative render cost of every frame (pure Python, deterministic, bounded).

    1.0 is a simple frame (one that escapes at once everywhere). A Julia animation with a
    still camera follows its critical orbit (``_critical_costs``); anything with a view
    to look at (the parameter-plane fractals, Newton, a moving camera) probes the view
    (``_view_costs``), which follows a zoom's growth in cost over orders of magnitude.
    """
    if costs_follow_critical_orbit(spec):
        return _critical_costs(spec)
    return _view_costs(spec)


def frame_iterations(spec: AnimationSpec, frame: int) -> float:
    """Estimated mean iterations a pixel of ``frame`` runs (at most ``max_iter``): what a
    single still of it costs, for the preview's work cap. Julia families still: their
    critical orbit (``max_iter`` when it never escapes); views: the probe, as
    ``frame_costs`` estimates them."""
    if costs_follow_critical_orbit(spec):
        return float(max(_critical_iterations(spec, spec.c_at(frame)), 1))
    from fractal.spec import PERTURBATION_BELOW

    cost = _view_costs(spec)[frame]
    deep = spec.view_at(frame).scale < PERTURBATION_BELOW
    per_cost = DEEP_ITERATIONS_PER_FRAME_COST if deep else FLOAT_ITERATIONS_PER_FRAME_COST
    return min(float(spec.max_iter), max(1.0, (cost - 1.0) * per_cost))


def _critical_iterations(spec: AnimationSpec, c: complex) -> int:
    """Iterations of the critical orbit for ``c`` until it escapes; ``max_iter`` when it is
    still bounded after ``COST_ITERATIONS`` (counted as never escaping)."""
    limit = min(spec.max_iter, COST_ITERATIONS)
    kind = spec.fractal.value
    if kind == "julia":
        escape = critical_escape(c, limit)
    else:
        escape = probe_count(kind, spec.degree, 0j, c, limit)
    return spec.max_iter if escape >= limit else escape


def _critical_costs(spec: AnimationSpec) -> list[float]:
    """A Julia frame (of any family) is expensive when c is in or near the family's
    connectedness locus: then many pixels escape slowly or not at all. The orbit of the
    critical point measures exactly that. Long animations are sampled (each frame takes
    the cost of the sample before it), and an orbit still bounded after
    ``COST_ITERATIONS`` counts as never escaping.
    """
    frames = spec.frame_count
    step = -(-frames // COST_SAMPLES)
    costs: list[float] = []
    for sample in range(0, frames, step):
        iterations = _critical_iterations(spec, spec.c_at(sample))
        cost = 1.0 + iterations / CRITICAL_ITERATIONS_PER_FRAME_COST
        costs.extend([cost] * min(step, frames - sample))
    return costs


def _step(kind: str, power: int) -> Callable[[complex, complex], complex]:
    """One iteration of a fractal's map, z -> f(z) + c (Newton: its own step)."""
    if kind.startswith("burning_ship"):
        return lambda z, c: complex(abs(z.real), abs(z.imag)) ** 2 + c
    if kind.startswith("tricorn"):
        return lambda z, c: z.conjugate() ** 2 + c
    if kind.startswith("multibrot"):
        return lambda z, c: z**power + c
    return lambda z, c: z * z + c


def probe_count(kind: str, power: int, point: complex, c: complex, limit: int) -> int:
    """Iterations of one probe point (``limit``: never escaped or converged)."""
    if kind == "newton":
        z = point
        for n in range(limit):
            if min(abs(z - root) for root in _CUBE_ROOTS) < 1e-6:
                return n
            if z == 0:
                return limit
            z -= (z**3 - 1) / (3 * z * z)
        return limit
    step = _step(kind, power)
    julia = kind == "julia" or kind.endswith("_julia")
    z, parameter = (point, c) if julia else (0j, point)
    for n in range(limit):
        if z.real * z.real + z.imag * z.imag > 4.0:
            return n
        z = step(z, parameter)
    return limit


def _in_main_cardioid(spec: AnimationSpec, c: complex) -> bool:
    """A Mandelbrot point of the main cardioid or the period-2 bulb."""
    if spec.fractal.value != "mandelbrot":
        return False
    q = (c.real - 0.25) ** 2 + c.imag**2
    return q * (q + c.real - 0.25) <= 0.25 * c.imag**2 or abs(c + 1) <= 0.25


_CUBE_ROOTS = (1 + 0j, complex(-0.5, 0.8660254037844386), complex(-0.5, -0.8660254037844386))


def _probe_mean(spec: AnimationSpec, frame: int) -> float:
    """Mean iterations of the probe points of a frame's (float64-reachable) view."""
    view = spec.view_at(frame)
    center = view.center
    turn = cmath.exp(1j * view.rotation)
    half_width = view.scale * spec.width / spec.height
    limit = min(spec.max_iter, PROBE_ITERATIONS)
    c = spec.c_at(frame)
    total = 0.0
    for row in range(PROBE_ROWS):
        for column in range(PROBE_COLUMNS):
            offset = complex(
                ((2 * column + 1) / PROBE_COLUMNS - 1) * half_width,
                (1 - (2 * row + 1) / PROBE_ROWS) * view.scale,
            )
            point = center + turn * offset
            count = probe_count(spec.fractal.value, spec.degree, point, c, limit)
            if count >= limit:
                # Julia and Mandelbrot interiors cost the kernels' cycle checks, not
                # max_iter (their attracting cycles settle into exact float cycles within
                # a few passes); a slow escaper at least the probe's limit. The other
                # families' orbits rarely repeat bit for bit (Burning Ship's folding,
                # multibrot's slow attractors: measured near max_iter), so anything the
                # probe could not see escape costs them max_iter.
                if spec.fractal.value not in CYCLE_CHECKED:
                    count = spec.max_iter
                elif limit == spec.max_iter or _in_main_cardioid(spec, point):
                    count = INTERIOR_ITERATIONS
                else:
                    count = limit
            total += count
    return total / (PROBE_ROWS * PROBE_COLUMNS)


def _view_costs(spec: AnimationSpec) -> list[float]:
    """Probe a few frames, interpolate the rest in zoom depth (log scale), extrapolate the
    frames beyond float64 along the zoom."""
    from fractal.spec import PERTURBATION_BELOW

    frames = spec.frame_count
    depths = [math.log10(1.0 / spec.view_at(frame).scale) for frame in range(frames)]
    samples = sorted(
        {round(k * (frames - 1) / max(PROBE_FRAMES - 1, 1)) for k in range(PROBE_FRAMES)}
    )
    probed = [
        (depths[frame], _probe_mean(spec, frame))
        for frame in samples
        if spec.view_at(frame).scale >= PERTURBATION_BELOW
    ]
    probed.sort()
    costs = []
    for depth in depths:
        mean = _mean_at(depth, probed)
        deep = depth > -math.log10(PERTURBATION_BELOW)
        mean = min(mean, float(spec.max_iter))
        per_cost = DEEP_ITERATIONS_PER_FRAME_COST if deep else FLOAT_ITERATIONS_PER_FRAME_COST
        costs.append(1.0 + mean / per_cost)
    return costs


def _mean_at(depth: float, probed: list[tuple[float, float]]) -> float:
    """The mean count at a depth: interpolated between probes, extrapolated past them."""
    if not probed:
        return max(depth + 1.0, 1.0) * ITERATIONS_PER_DECADE
    if len(probed) == 1:
        only_depth, only_mean = probed[0]
        return only_mean + max(0.0, depth - only_depth) * ITERATIONS_PER_DECADE
    depths = [d for d, _ in probed]
    index = bisect.bisect_left(depths, depth)
    if 0 < index < len(probed):
        (d0, m0), (d1, m1) = probed[index - 1], probed[index]
        u = (depth - d0) / (d1 - d0) if d1 > d0 else 0.0
        return m0 + (m1 - m0) * u
    if index == 0:
        return probed[0][1]
    # Deeper than every probe: continue the trend of the deepest half of the probes
    # (at least ITERATIONS_PER_DECADE / 4 per decade: counts grow along a zoom).
    tail = probed[len(probed) // 2 :]
    (d0, m0), (d1, m1) = tail[0], tail[-1]
    slope = (m1 - m0) / (d1 - d0) if d1 > d0 else 0.0
    slope = max(slope, ITERATIONS_PER_DECADE / 4)
    return m1 + slope * (depth - d1)


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
