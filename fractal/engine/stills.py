"""Single images: a frame of a spec at another size (previews, posters), tiles of the
c-plane (the studio's map), and their encoding to PNG or WebP.

The same kernels and colourings as the videos, so a preview shows exactly what the render
will (at the size asked for). Every function is safe to call from several threads at once:
the kernels release the GIL and each call allocates its own buffers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from fractal.spec import AnimationSpec, Colormap

from .coloring import PALETTES, SMOOTH_BAILOUT2, smooth_palette
from .frames import FrameRenderer
from .kernels import EscapeBuffers, MandelbrotKernel, PixelGrid


class ImageFormat(StrEnum):
    webp = "webp"
    png = "png"

    @property
    def media_type(self) -> str:
        return f"image/{self.value}"


def encode_image(rgb: np.ndarray, image_format: ImageFormat, quality: int = 80) -> bytes:
    """``rgb`` (height, width, 3) uint8 as an image file.

    WebP is lossy at ``quality`` with the fastest method (a 480x360 frame in about 3 ms,
    a tenth of a PNG's bytes); PNG is lossless at the fastest compression level.
    """
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(rgb, "RGB")
    if image_format is ImageFormat.webp:
        image.save(buffer, "WEBP", quality=quality, method=0)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def fit_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The largest even size of the same aspect as ``width`` x ``height`` within the box
    (never larger than the original, never below 16)."""
    factor = min(1.0, max_width / width, max_height / height)
    return (
        max(16, int(width * factor) // 2 * 2),
        max(16, int(height * factor) // 2 * 2),
    )


def render_still(spec: AnimationSpec, frame: int, width: int, height: int) -> np.ndarray:
    """Frame ``frame`` of ``spec`` drawn at ``width`` x ``height`` as RGB (the view is the
    spec's: same centre and height of the view, the width follows the aspect)."""
    fields = spec.model_dump(mode="json")
    fields.update(width=width, height=height)
    return FrameRenderer(AnimationSpec.model_validate(fields)).render(frame)


# The c-plane map: the square |re|, |im| <= MAP_EXTENT cut into 2**z x 2**z tiles at zoom z
# (x to the right, y downwards from the top-left corner, as web maps number them). Julia
# parameters are allowed up to |c| <= 4, so the square holds every one of them.
MAP_EXTENT = 4.0
TILE_SIZE = 256
MAX_TILE_ZOOM = 40  # a pixel is then about 3e-14 wide, still exact in float64
MAP_COLORMAP = Colormap.ocean


def tile_iterations(zoom: int) -> int:
    """Escape iterations of a tile: deeper views need more to show the boundary."""
    return min(200 + 100 * zoom, 3000)


@dataclass(frozen=True)
class TileView:
    """Where tile (zoom, x, y) lies in the c-plane."""

    center: complex
    half_side: float

    @classmethod
    def of(cls, zoom: int, x: int, y: int) -> TileView:
        side = 2 * MAP_EXTENT / 2**zoom
        return cls(complex(-MAP_EXTENT + (x + 0.5) * side, MAP_EXTENT - (y + 0.5) * side), side / 2)


def render_map_tile(zoom: int, x: int, y: int) -> np.ndarray:
    """The Mandelbrot set over tile (zoom, x, y) as TILE_SIZE x TILE_SIZE RGB.

    Coloured by the smooth iteration count through a fixed palette (no per-image histogram,
    so neighbouring tiles match at their edges), the set itself black.
    """
    if not 0 <= zoom <= MAX_TILE_ZOOM or not (0 <= x < 2**zoom and 0 <= y < 2**zoom):
        raise ValueError(f"no tile {zoom}/{x}/{y}")
    view = TileView.of(zoom, x, y)
    grid = PixelGrid.for_view(TILE_SIZE, TILE_SIZE, view.center, view.half_side)
    buffers = EscapeBuffers.for_grid(grid, want_r2=True)
    iterations = tile_iterations(zoom)
    MandelbrotKernel().escape_counts(0j, grid, iterations, SMOOTH_BAILOUT2, buffers)
    rgb = np.empty((TILE_SIZE, TILE_SIZE, 3), np.uint8)
    smooth_palette(buffers.counts, buffers.final_r2, iterations, PALETTES[MAP_COLORMAP], rgb)
    return rgb
