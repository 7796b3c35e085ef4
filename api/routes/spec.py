"""The animation spec as data: its JSON schema (the studio builds its form from it) and
what a spec would cost before it is submitted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from api import paths
from api.deps import ContextDep
from api.estimate import Estimate, estimate
from api.requester import RequesterDep
from api.schemas import Problem
from fractal.spec import AnimationSpec

router = APIRouter(tags=["spec"])


@router.get(paths.SPEC + "/schema")
def spec_schema(response: Response) -> dict[str, Any]:
    """The JSON schema of the animation spec, every field with its default, range and
    description: the body of `POST /v1/animations` (and of an estimate or a preview)."""
    response.headers["Cache-Control"] = "no-cache"
    return AnimationSpec.model_json_schema()


@router.post(
    paths.ANIMATIONS + "/estimate",
    responses={
        422: {"model": Problem, "description": "an invalid field"},
        429: {"model": Problem, "description": "preview and estimate rate limit"},
    },
)
def estimate_animation(
    spec: Annotated[AnimationSpec, Body()],
    context: ContextDep,
    subject: RequesterDep,
    response: Response,
) -> Estimate:
    """What the spec would cost: frames, pixels, work units against the cap, whether a
    submission would be accepted (and if not, the server's reason), the chunk plan, and c
    along the path. No account needed; counted with the previews."""
    response.headers.update(context.spend_rate_limit(context.previews, subject))
    return estimate(context, spec)
