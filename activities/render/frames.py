"""One frame of an animation spec to RGB, reusing buffers so memory stays flat."""

from __future__ import annotations

import numpy as np

from fractal.spec import AnimationSpec, Colormap

from .coloring import bailout2_for, box_downsample, colorize
from .kernels import kernel_for


def pixel_axes(
    width: int, height: int, center: complex, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Real coordinates of the pixel columns and imaginary ones of the rows (row 0 on top).

    Pixel centres sit at (i + 0.5) / width of the view. The offsets are computed from the
    odd integers 2i + 1 - width, so column i and column width - 1 - i are exact negatives
    of each other, which is what makes mirroring a centred Julia frame bit-exact.
    """
    pixel = scale / height  # half a pixel's size; the view is 2 * scale high
    columns = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    xs = center.real + (2.0 * columns + 1.0 - width) * pixel
    ys = center.imag + (height - 1.0 - 2.0 * rows) * pixel
    return np.ascontiguousarray(xs), np.ascontiguousarray(ys)


class FrameRenderer:
    """Renders frames of one spec; not thread-safe, make one per thread."""

    def __init__(self, spec: AnimationSpec) -> None:
        self.spec = spec
        factor = spec.supersample
        self._kernel = kernel_for(spec.fractal)
        self._bailout2 = bailout2_for(spec.colormap)
        self._center = complex(spec.center)
        hi_width, hi_height = spec.width * factor, spec.height * factor
        self.xs, self.ys = pixel_axes(hi_width, hi_height, self._center, spec.scale)
        self.counts = np.empty((hi_height, hi_width), np.int32)
        self.final_r2 = np.empty((hi_height, hi_width), np.float64)
        self._hi_rgb = np.empty((hi_height, hi_width, 3), np.uint8)
        self._rgb = (
            self._hi_rgb if factor == 1 else np.empty((spec.height, spec.width, 3), np.uint8)
        )

    def escape_counts(self, frame: int) -> np.ndarray:
        """Escape counts of ``frame`` at the supersampled resolution (a reused buffer)."""
        self._kernel.render_counts(
            self.spec.c_at(frame),
            self.spec.max_iter,
            self._bailout2,
            self.xs,
            self.ys,
            self.counts,
            self.final_r2,
            self.spec.colormap is not Colormap.classic,
            self._center,
        )
        return self.counts

    def render(self, frame: int) -> np.ndarray:
        """RGB of ``frame`` as a (height, width, 3) uint8 array, overwritten by the next call."""
        self.escape_counts(frame)
        colorize(self.spec.colormap, self.counts, self.final_r2, self.spec.max_iter, self._hi_rgb)
        if self.spec.supersample > 1:
            box_downsample(self._hi_rgb, self.spec.supersample, self._rgb)
        return self._rgb


def warm_kernels() -> None:
    """Load every Numba kernel (compiling it into the on-disk cache the first time).

    The kernels have explicit signatures, so importing them compiles or loads them; running
    one tiny frame per colouring also touches every code path once. Call it before
    threads or processes start rendering, so they never race to fill the cache.
    """
    from .yuv import yuv420_frame

    for colormap in Colormap:
        spec = AnimationSpec(width=16, height=16, frames=1, colormap=colormap, supersample=2)
        yuv420_frame(FrameRenderer(spec).render(0))
