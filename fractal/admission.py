"""What an animation will cost before it is rendered: CPU, a worker's memory, stored bytes.

Light (standard library only, like ``fractal.chunks``): the API admits or refuses a
submission with it in the request path. Every figure is an upper bound for the workers it
was calibrated on, so that nothing admitted can exceed a worker's memory or a user's CPU
budget; ``bench/admission.py`` renders a matrix of specs (the worst cases included) and
prints the measured figures next to these estimates, which is how the constants below
were chosen (docs/security.md#admission).

CPU is the sum over frames of

* the kernel: ``samples x (KERNEL_SECONDS_PER_SAMPLE + KERNEL_SECONDS_PER_SAMPLE_COST x
  (frame_cost - 1))``, where ``frame_cost`` is ``fractal.chunks.frame_costs`` (1 for a
  frame whose pixels escape at once, growing with the iterations its pixels may need);
  a new fractal or zoom extends ``frame_costs`` and flows through unchanged;
* colouring every sample (``COLOUR_SECONDS_PER_SAMPLE``, the smooth palettes cost ten times
  the classic histogram), box-filtering supersampled frames, and the RGB -> YUV conversion
  plus H.264 encoding of every output pixel;
* a fixed cost per frame and per chunk (renderer and encoder set-up, upload),

times ``CPU_MARGIN``. Memory of one render activity is its supersampled buffers (escape
counts, |z|², RGB) plus the encoder's frames per output pixel; a worker holds
``WORKER_BASE_BYTES`` plus one such activity per slot. Output bytes bound the H.264 stream
at the encoder's CRF for the busiest content measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from fractal.chunks import costs_follow_critical_orbit, frame_costs

if TYPE_CHECKING:
    from fractal.spec import AnimationSpec

# -- CPU, measured on one core of an AMD EPYC (AVX-512) VM, one thread per chunk ------------
KERNEL_SECONDS_PER_SAMPLE = 12e-9
# Per sample and unit of (frame_cost - 1) = 900 critical iterations. frame_costs cannot
# tell a superattracting interior (c = 0: cycles found within a few passes, about 10 ns a
# sample at any max_iter) from a parabolic one (c = 0.25: no float cycle is ever exact);
# the bound must take the slowest, a view wholly inside the c = 0.25 basin, where every
# pixel runs to max_iter at about 0.56 ns an iteration.
KERNEL_SECONDS_PER_SAMPLE_COST = 510e-9
# The same for frames whose cost probes the view itself (the parameter-plane fractals,
# Newton, any moving camera: ``fractal.chunks._view_costs``), where a unit is about 45
# float64 iterations of every pixel (or 22 by perturbation) and the probe already sees
# the interior: the slowest views measured (slow escapers beside a parabolic cusp, the
# deep frames of a zoom whose counts are extrapolated) set it, with bench/admission.py.
VIEW_KERNEL_SECONDS_PER_SAMPLE_COST = 120e-9
COLOUR_SECONDS_PER_SAMPLE = {"classic": 3e-9, "smooth": 42e-9}
DOWNSAMPLE_SECONDS_PER_SAMPLE = 5e-9
ENCODE_SECONDS_PER_PIXEL = 35e-9  # RGB -> YUV 4:2:0 and libx264 (veryfast, one thread)
FRAME_SECONDS = 1e-3
CHUNK_SECONDS = 0.1
CPU_MARGIN = 1.5

# -- memory of one render activity ----------------------------------------------------------
# Per sample: int32 counts and RGB; the smooth colourings also touch float64 |z|².
BYTES_PER_SAMPLE = {"classic": 7, "smooth": 15}
# libx264's reference, look-ahead and analysis frames, the YUV frame and the RGB frame.
BYTES_PER_PIXEL = 85
CHUNK_BASE_BYTES = 24 * 1024**2
MEMORY_MARGIN = 1.2
# A worker process before it renders anything (Python, Numba's kernels, PyAV, Temporal,
# SQLAlchemy): its resident size measured idle, rounded up.
WORKER_BASE_BYTES = 400 * 1024**2

# -- output ---------------------------------------------------------------------------------
# Bytes per pixel and frame of the H.264 stream at CRF 19, for the busiest content measured
# (a dust-like Julia set turning fast at full resolution), with a margin.
OUTPUT_BYTES_PER_PIXEL_FRAME = 0.15
OUTPUT_BASE_BYTES = 64 * 1024


@dataclass(frozen=True)
class CostEstimate:
    cpu_seconds: float
    chunk_memory_bytes: int  # peak of one render activity, without the worker's own base
    output_bytes: int

    def worker_memory_bytes(self, slots: int) -> int:
        """A worker's peak with ``slots`` of these chunks rendering at once."""
        return WORKER_BASE_BYTES + slots * self.chunk_memory_bytes


def colouring(spec: AnimationSpec) -> str:
    return "classic" if spec.colouring.value == "classic" else "smooth"


def estimate_cost(spec: AnimationSpec, frames_per_chunk: int) -> CostEstimate:
    """Upper bounds on what rendering ``spec`` in chunks of ``frames_per_chunk`` costs."""
    factor = spec.supersample
    samples = spec.pixels * factor * factor
    frames = spec.frame_count
    per_cost = (
        KERNEL_SECONDS_PER_SAMPLE_COST
        if costs_follow_critical_orbit(spec)
        else VIEW_KERNEL_SECONDS_PER_SAMPLE_COST
    )
    kernel = samples * sum(
        KERNEL_SECONDS_PER_SAMPLE + per_cost * (cost - 1.0) for cost in frame_costs(spec)
    )
    per_frame = (
        samples * COLOUR_SECONDS_PER_SAMPLE[colouring(spec)]
        + (samples * DOWNSAMPLE_SECONDS_PER_SAMPLE if factor > 1 else 0.0)
        + spec.pixels * ENCODE_SECONDS_PER_PIXEL
        + FRAME_SECONDS
    )
    chunks = -(-frames // max(1, frames_per_chunk))
    cpu = CPU_MARGIN * (kernel + frames * per_frame + chunks * CHUNK_SECONDS)
    memory = MEMORY_MARGIN * (
        CHUNK_BASE_BYTES
        + samples * BYTES_PER_SAMPLE[colouring(spec)]
        + spec.pixels * BYTES_PER_PIXEL
    )
    output = OUTPUT_BASE_BYTES + spec.pixels * frames * OUTPUT_BYTES_PER_PIXEL_FRAME
    return CostEstimate(cpu_seconds=cpu, chunk_memory_bytes=int(memory), output_bytes=int(output))


def mib(count: float) -> str:
    return f"{count / 1024**2:,.0f} MiB"


@dataclass(frozen=True)
class AdmissionLimits:
    max_cpu_seconds: float
    worker_memory_bytes: int
    worker_slots: int


class Limit(Enum):
    """Which of a worker's limits an animation passes."""

    CPU = "cpu"
    MEMORY = "memory"


def exceeded_limit(estimate: CostEstimate, limits: AdmissionLimits) -> tuple[Limit, str] | None:
    """The first limit an animation passes under ``limits`` and why, or None."""
    if estimate.cpu_seconds > limits.max_cpu_seconds:
        return Limit.CPU, (
            f"animation too costly: estimated {estimate.cpu_seconds:,.0f} CPU-seconds, "
            f"the limit per animation is {limits.max_cpu_seconds:,.0f} (fewer frames, "
            "pixels, supersampling or iterations lower it)"
        )
    needed = estimate.worker_memory_bytes(limits.worker_slots)
    if needed > limits.worker_memory_bytes:
        return Limit.MEMORY, (
            f"animation too large for a worker's memory: {limits.worker_slots} chunks at once "
            f"need an estimated {mib(needed)}, a worker has {mib(limits.worker_memory_bytes)} "
            "(fewer pixels or less supersampling lower it)"
        )
    return None


def refusal(estimate: CostEstimate, limits: AdmissionLimits) -> str | None:
    """Why an animation can never be admitted under ``limits``, or None."""
    exceeded = exceeded_limit(estimate, limits)
    return exceeded[1] if exceeded else None
