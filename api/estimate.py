"""What a spec would cost, as the server sees it before anything is rendered.

The same numbers ``submit`` uses (the admission model's CPU, memory and output bounds
against the limits, the chunk plan the workflow would get), so a client can show the cost
and refuse in advance what the server would refuse, with the server's own words. The
user's quotas (what they already spent today, what they store) are not part of it: an
estimate needs no account.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.animation_service import admission_limits, admission_refusal, cost_estimate
from api.context import AppContext
from api.render_service import chunk_plan
from fractal.chunks import frame_costs
from fractal.spec import AnimationSpec

# Points of c along the path sent with an estimate (the studio draws the path with them).
PATH_SAMPLES = 240


class ChunkEstimate(BaseModel):
    first_frame: int
    stop_frame: int = Field(description="exclusive")
    relative_cost: float = Field(description="estimated cost, in standard frames")


class PathPoint(BaseModel):
    frame: int
    re: float
    im: float


class Estimate(BaseModel):
    frames: int
    duration: float = Field(description="seconds of video")
    width: int
    height: int
    pixels: int = Field(description="pixels per frame")
    samples: int = Field(description="samples per frame: pixels x supersample²")
    cpu_seconds: float = Field(
        description="the admission model's upper bound on the CPU-seconds of the render"
    )
    max_cpu_seconds: float = Field(description="the server's limit per animation")
    cpu_seconds_per_day: float = Field(description="the daily CPU quota of a user")
    worker_memory_bytes: int = Field(
        description="estimated peak of a worker rendering its slots' chunks of it at once"
    )
    max_worker_memory_bytes: int = Field(description="a worker's memory")
    output_bytes: int = Field(description="upper bound on the video's size")
    stored_bytes_per_user: int = Field(description="the storage quota of a user")
    relative_cost: float = Field(
        description="estimated render cost in standard frames (a frame whose critical "
        "orbit escapes at once costs 1), summed over the frames"
    )
    chunks: list[ChunkEstimate] = Field(description="the chunks a render would be split into")
    accepted: bool = Field(
        description="whether a submission would pass the admission limits (the user's quotas aside)"
    )
    refusal: str | None = Field(description="why a submission would be refused (422 detail)")
    c_path: list[PathPoint] = Field(
        description=f"c at up to {PATH_SAMPLES} frames spread over the animation, first "
        "and last included"
    )


def sampled_frames(frames: int, samples: int = PATH_SAMPLES) -> list[int]:
    if frames <= samples:
        return list(range(frames))
    return sorted({round(index * (frames - 1) / (samples - 1)) for index in range(samples)})


def estimate(context: AppContext, spec: AnimationSpec) -> Estimate:
    settings = context.settings
    costs = frame_costs(spec)
    cost = cost_estimate(settings, spec)
    limits = admission_limits(settings)
    refusal = admission_refusal(settings, cost)
    return Estimate(
        frames=spec.frame_count,
        duration=spec.frame_count / spec.fps,
        width=spec.width,
        height=spec.height,
        pixels=spec.pixels,
        samples=spec.pixels * spec.supersample**2,
        cpu_seconds=round(cost.cpu_seconds, 1),
        max_cpu_seconds=limits.max_cpu_seconds,
        cpu_seconds_per_day=settings.cpu_seconds_per_day,
        worker_memory_bytes=cost.worker_memory_bytes(limits.worker_slots),
        max_worker_memory_bytes=limits.worker_memory_bytes,
        output_bytes=cost.output_bytes,
        stored_bytes_per_user=settings.stored_bytes_per_user,
        relative_cost=round(sum(costs), 2),
        chunks=[
            ChunkEstimate(
                first_frame=chunk.first_frame,
                stop_frame=chunk.stop_frame,
                relative_cost=round(sum(costs[chunk.first_frame : chunk.stop_frame]), 2),
            )
            for chunk in chunk_plan(settings, spec, costs)
        ],
        accepted=refusal is None,
        refusal=refusal.detail if refusal else None,
        c_path=[
            PathPoint(frame=frame, re=(c := spec.c_at(frame)).real, im=c.imag)
            for frame in sampled_frames(spec.frame_count)
        ],
    )
