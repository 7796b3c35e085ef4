"""What a spec would cost, as the server sees it before anything is rendered.

The same numbers ``submit`` uses (work units against the cap, the chunk plan the workflow
would get), so a client can show the cost and refuse in advance what the server would
refuse, with the server's own words. Grows with the admission model.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.animation_service import work_refusal, work_units
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
    work_units: int = Field(description="pixels x supersample² x frames x max_iter")
    max_work_units: int = Field(description="the server's cap on work_units")
    relative_cost: float = Field(
        description="estimated render cost in standard frames (a frame whose critical "
        "orbit escapes at once costs 1), summed over the frames"
    )
    chunks: list[ChunkEstimate] = Field(description="the chunks a render would be split into")
    accepted: bool = Field(description="whether a submission would pass the work cap")
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
    costs = frame_costs(spec)
    refusal = work_refusal(context, spec)
    return Estimate(
        frames=spec.frame_count,
        duration=spec.frame_count / spec.fps,
        width=spec.width,
        height=spec.height,
        pixels=spec.pixels,
        samples=spec.pixels * spec.supersample**2,
        work_units=work_units(spec),
        max_work_units=context.settings.max_work_units,
        relative_cost=round(sum(costs), 2),
        chunks=[
            ChunkEstimate(
                first_frame=chunk.first_frame,
                stop_frame=chunk.stop_frame,
                relative_cost=round(sum(costs[chunk.first_frame : chunk.stop_frame]), 2),
            )
            for chunk in chunk_plan(context.settings, spec, costs)
        ],
        accepted=refusal is None,
        refusal=refusal,
        c_path=[
            PathPoint(frame=frame, re=(c := spec.c_at(frame)).real, im=c.imag)
            for frame in sampled_frames(spec.frame_count)
        ],
    )
