"""Images drawn while you wait, no account needed: a frame of a spec (``/v1/preview``) and
the tiles of the c-plane map (``/v1/map``). Rendered in this process (``api/stills.py``),
cacheable by ETag, rate-limited per user or client address."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api import paths
from api.context import AppContext
from api.deps import ContextDep
from api.problems import invalid, invalid_model
from api.requester import RequesterDep
from api.schemas import Problem
from api.stills import Still, preview_etag, tile_etag
from api.strict_json import json_problem
from fractal.chunks import frame_iterations
from fractal.engine.stills import (
    MAP_EXTENT,
    MAX_TILE_ZOOM,
    TILE_SIZE,
    ImageFormat,
    tile_iterations,
)
from fractal.spec import MAX_HEIGHT, MAX_WIDTH, MIN_HEIGHT, MIN_WIDTH, AnimationSpec

router = APIRouter(tags=["studio"])

PREVIEW_CACHE = "public, max-age=86400"
TILE_CACHE = "public, max-age=604800"
IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/webp": {}, "image/png": {}},
        "description": "the image; `ETag`, `Cache-Control`, `Server-Timing` (render and "
        "encode milliseconds, or `cache;desc=hit`)",
    },
    304: {"description": "`If-None-Match` matched: the client's copy is current"},
    429: {"model": Problem, "description": "preview or tile rate limit (`Retry-After`)"},
    503: {"model": Problem, "description": "rate limiting (Redis) unavailable"},
}


class PreviewRequest(BaseModel):
    """A frame of an animation spec to draw (the body of ``POST /v1/preview``)."""

    # Unknown fields are refused, as in every body of the API (docs/security.md).
    model_config = ConfigDict(extra="forbid")

    spec: AnimationSpec = Field(default_factory=AnimationSpec, description="the animation")
    frame: int = Field(default=0, ge=0, description="0-based frame of the animation")
    width: int | None = Field(
        default=None, description="image width; default: the spec's, scaled to the cap"
    )
    height: int | None = Field(
        default=None, description="image height; default: follows the width and the aspect"
    )
    format: ImageFormat = Field(default=ImageFormat.webp, description="webp or png")


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def preview_size(
    spec: AnimationSpec, width: int | None, height: int | None, max_pixels: int, where: str
) -> tuple[int, int]:
    """The image size: as asked (checked), or the spec's aspect scaled to fit the cap."""
    aspect = spec.width / spec.height
    if width is None and height is None:
        factor = min(1.0, math.sqrt(max_pixels / spec.pixels))
        width, height = _even(spec.width * factor), _even(spec.height * factor)
    elif height is None:
        assert width is not None
        height = _even(round(width / aspect))
    elif width is None:
        width = _even(round(height * aspect))
    for name, value, low, high in (
        ("width", width, MIN_WIDTH, MAX_WIDTH),
        ("height", height, MIN_HEIGHT, MAX_HEIGHT),
    ):
        if not low <= value <= high or value % 2:
            raise invalid(
                (where, name), f"must be an even number from {low} to {high}, got {value}", value
            )
    if width * height > max_pixels:
        raise invalid(
            (where, "width"),
            f"preview too large: {width} x {height} = {width * height} pixels exceeds {max_pixels}",
            width,
        )
    return width, height


def check_preview_work(
    context: AppContext, spec: AnimationSpec, frame: int, width: int, height: int, where: str
) -> None:
    """Refuse a still whose estimated work (pixels x supersample² x the iterations its
    pixels are expected to run: ``max_iter`` where the estimate cannot tell, far fewer
    along most of a deep zoom) passes the cap."""
    iterations = math.ceil(frame_iterations(spec, frame))
    work = width * height * spec.supersample**2 * iterations
    limit = context.settings.preview_max_work_units
    if work > limit:
        raise invalid(
            (where, "spec", "max_iter"),
            f"preview too expensive: {width} x {height} x supersample² {spec.supersample**2} "
            f"x {iterations} estimated iterations a pixel (max_iter {spec.max_iter}) = {work} "
            f"exceeds {limit}; lower max_iter, supersample or the preview size",
            spec.max_iter,
        )


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return etag in {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}


async def image_response(
    request: Request,
    context: AppContext,
    etag: str,
    image_format: ImageFormat,
    cache_control: str,
    spend: Callable[[], dict[str, str]],
    draw: Callable[[], Awaitable[Still]],
) -> Response:
    """304 if the client has it, the cached image if this process has it, else spend a
    token of the requester's bucket and draw it."""
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    still = context.stills.cached(etag, image_format)
    if still is None:
        headers.update(await run_in_threadpool(spend))
        still = await draw()
    headers["Server-Timing"] = still.server_timing()
    return Response(still.body, media_type=still.media_type, headers=headers)


async def preview_image(
    request: Request,
    context: AppContext,
    subject: str,
    preview: PreviewRequest,
    where: str,
) -> Response:
    spec = preview.spec
    if preview.frame >= spec.frame_count:
        raise invalid(
            (where, "frame"),
            f"must be from 0 to {spec.frame_count - 1} (the animation has "
            f"{spec.frame_count} frames), got {preview.frame}",
            preview.frame,
        )
    width, height = preview_size(
        spec, preview.width, preview.height, context.settings.preview_max_pixels, where
    )
    # The estimate probes the view in Python (up to about 0.1 s): off the event loop.
    await run_in_threadpool(check_preview_work, context, spec, preview.frame, width, height, where)
    return await image_response(
        request,
        context,
        preview_etag(spec, preview.frame, width, height, preview.format),
        preview.format,
        PREVIEW_CACHE,
        lambda: context.spend_rate_limit(context.previews, subject),
        lambda: context.stills.preview(spec, preview.frame, width, height, preview.format),
    )


@router.get(
    paths.PREVIEW, response_class=Response, responses={**IMAGE_RESPONSES, 422: {"model": Problem}}
)
async def preview_get(
    request: Request,
    context: ContextDep,
    subject: RequesterDep,
    spec: Annotated[
        str,
        Query(
            max_length=16384,
            description="the animation spec as JSON (URL-encoded); `{}` is the default animation",
        ),
    ] = "{}",
    frame: Annotated[int, Query(ge=0, description="0-based frame")] = 0,
    width: Annotated[int | None, Query(description="image width")] = None,
    height: Annotated[int | None, Query(description="image height")] = None,
    format: Annotated[ImageFormat, Query(description="webp or png")] = ImageFormat.webp,
) -> Response:
    """Frame ``frame`` of ``spec`` as an image, drawn now by the engine in the API process.

    The size is ``width`` x ``height`` (give one and the other follows the spec's aspect;
    neither: the spec's size scaled down to the cap), at most
    `FRACTAL_PREVIEW_MAX_PIXELS`, and width x height x supersample² x the frame's estimated
    iterations a pixel (max_iter where it cannot tell) at most
    `FRACTAL_PREVIEW_MAX_WORK_UNITS`. No account needed; a bearer token makes the rate
    limit per user instead of per address. Use ``POST`` for specs too long for a URL.
    """
    # The body guard holds JSON bodies to RFC 8259 (api/strict_json.py); JSON in a query
    # parameter is held to the same, or a NaN, 1e400 or lone surrogate would reach the spec.
    problem = json_problem(spec.encode("utf-8", "surrogatepass"))
    if problem is not None:
        where = ("query", "spec", *problem.location[1:])
        raise invalid(where, problem.message.replace("invalid JSON", "not valid JSON"))
    fields = json.loads(spec)
    if not isinstance(fields, dict):
        raise invalid(("query", "spec"), "must be a JSON object", spec[:100])
    try:
        parsed = AnimationSpec.model_validate(fields)
    except ValidationError as error:
        raise invalid_model(("query", "spec"), error) from None
    preview = PreviewRequest.model_construct(
        spec=parsed, frame=frame, width=width, height=height, format=format
    )
    return await preview_image(request, context, subject, preview, "query")


@router.post(
    paths.PREVIEW, response_class=Response, responses={**IMAGE_RESPONSES, 422: {"model": Problem}}
)
async def preview_post(
    request: Request, context: ContextDep, subject: RequesterDep, preview: PreviewRequest
) -> Response:
    """The same as ``GET /v1/preview``, with the spec in a JSON body."""
    return await preview_image(request, context, subject, preview, "body")


class MapInfo(BaseModel):
    """How the c-plane map is tiled: what the page needs to place the tiles."""

    tile_url: str = Field(description="template of a tile's URL: {z}, {x}, {y}")
    tile_size: int = Field(description="pixels per tile side")
    extent: float = Field(
        description="the map is the square |re|, |im| <= extent; zoom z cuts it into "
        "2^z x 2^z tiles, x rightwards and y downwards from the top-left corner"
    )
    max_zoom: int
    iterations: dict[int, int] = Field(description="escape iterations of the tiles per zoom")


@router.get(paths.MAP)
def map_info() -> MapInfo:
    """The tiling of the c-plane map (the Mandelbrot set: the Julia parameters)."""
    return MapInfo(
        tile_url=paths.MAP + "/tiles/{z}/{x}/{y}.webp",
        tile_size=TILE_SIZE,
        extent=MAP_EXTENT,
        max_zoom=MAX_TILE_ZOOM,
        iterations={zoom: tile_iterations(zoom) for zoom in range(MAX_TILE_ZOOM + 1)},
    )


@router.get(
    paths.MAP + "/tiles/{z}/{x}/{y}.{image_format}",
    response_class=Response,
    responses={**IMAGE_RESPONSES, 404: {"model": Problem}},
)
async def map_tile(
    request: Request,
    context: ContextDep,
    subject: RequesterDep,
    z: int,
    x: int,
    y: int,
    image_format: Literal["webp", "png"],
) -> Response:
    """Tile (z, x, y) of the c-plane map, the Mandelbrot set by the engine's float64 kernel."""
    if not 0 <= z <= MAX_TILE_ZOOM or not (0 <= x < 2**z and 0 <= y < 2**z):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"no tile {z}/{x}/{y}: zoom 0..{MAX_TILE_ZOOM}, x and y 0..2^zoom - 1",
        )
    fmt = ImageFormat(image_format)
    return await image_response(
        request,
        context,
        tile_etag(z, x, y, fmt),
        fmt,
        TILE_CACHE,
        lambda: context.spend_rate_limit(context.map_tiles, subject),
        lambda: context.stills.tile(z, x, y, fmt),
    )
