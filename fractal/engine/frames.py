"""One frame of an animation spec to RGB, reusing buffers so memory stays flat."""

from __future__ import annotations

import numpy as np

from fractal.spec import AnimationSpec, Colormap

from .coloring import bailout2_for, box_downsample, colorize
from .kernels import EscapeBuffers, PixelGrid, kernel_for


class FrameRenderer:
    """Renders frames of one spec; not thread-safe, make one per thread."""

    def __init__(self, spec: AnimationSpec) -> None:
        self.spec = spec
        factor = spec.supersample
        self._kernel = kernel_for(spec.fractal)
        self._bailout2 = bailout2_for(spec.colormap)
        self.grid = PixelGrid.for_view(
            spec.width * factor, spec.height * factor, complex(spec.center), spec.scale
        )
        self.buffers = EscapeBuffers.for_grid(
            self.grid, want_r2=spec.colormap is not Colormap.classic
        )
        self._hi_rgb = np.empty((*self.buffers.counts.shape, 3), np.uint8)
        self._rgb = (
            self._hi_rgb if factor == 1 else np.empty((spec.height, spec.width, 3), np.uint8)
        )

    def escape_counts(self, frame: int) -> np.ndarray:
        """Escape counts of ``frame`` at the supersampled resolution (a reused buffer)."""
        self._kernel.escape_counts(
            self.spec.c_at(frame), self.grid, self.spec.max_iter, self._bailout2, self.buffers
        )
        return self.buffers.counts

    def render(self, frame: int) -> np.ndarray:
        """RGB of ``frame`` as a (height, width, 3) uint8 array, overwritten by the next call."""
        self.escape_counts(frame)
        colorize(
            self.spec.colormap,
            self.buffers.counts,
            self.buffers.final_r2,
            self.spec.max_iter,
            self._hi_rgb,
        )
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
    from .kernels import EscapeBuffers, MandelbrotKernel, PixelGrid

    grid = PixelGrid.for_view(16, 16, complex(-0.5, 0.0), 1.5)
    MandelbrotKernel().escape_counts(0j, grid, 50, 4.0, EscapeBuffers.for_grid(grid, True))
