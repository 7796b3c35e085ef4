"""One frame of an animation spec to RGB, reusing buffers so memory stays flat.

Per frame: the camera gives the view, the view chooses the kernel (float64, or
perturbation for deep Mandelbrot views), the kernel prepares (a reference orbit), then
computes bands of rows (on ``threads`` threads; ``keepalive`` is called between bands, so
a long frame still heartbeats), the symmetric half is copied, and the counts are
coloured.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import numpy as np

from fractal.spec import (
    PERTURBATION_BELOW,
    AnimationSpec,
    Colormap,
    FractalKind,
    Shading,
    StillCamera,
    View,
    precision_bits,
)

from .coloring import bailout2_for, box_downsample, colorize, palette_period
from .kernels import EscapeBuffers, Kernel, PerturbationKernel, PixelGrid, Symmetry, kernel_for
from .kernels.base import Keepalive

# Rows per band: small for the perturbation kernel (balances the threads, and a deep frame
# calls keepalive often), large for the fast float64 kernels (less per-call overhead).
DEEP_BAND_ROWS = 8
FLOAT_BAND_ROWS = 128


class FrameRenderer:
    """Renders frames of one spec; not thread-safe, make one per thread.

    ``threads`` > 1 computes the bands of each frame on that many threads (for one frame
    at a time; chunks rendered in parallel use one each). ``keepalive`` is called between
    bands and during a reference orbit.
    """

    def __init__(
        self, spec: AnimationSpec, *, threads: int = 1, keepalive: Keepalive | None = None
    ) -> None:
        self.spec = spec
        self.threads = max(1, threads)
        self.keepalive = keepalive
        factor = spec.supersample
        self._size = (spec.width * factor, spec.height * factor)
        self._float_kernel = kernel_for(spec.fractal, spec.degree)
        self._deep_kernel: PerturbationKernel | None = None
        if spec.fractal is FractalKind.mandelbrot:
            deepest = View(spec.center.re, spec.center.im, spec.scale_range()[0], 0.0)
            self._deep_kernel = PerturbationKernel(precision_bits(deepest, self._size[1]))
        self._bailout2 = bailout2_for(spec.colouring)
        self._distance = spec.shading is Shading.distance
        # Every colouring but the classic histogram colours a pixel from its own count.
        self._per_pixel_colours = spec.colouring is not Colormap.classic
        # A moving camera (or a deep view) colours in cycles whose length follows depth.
        self._cyclic = not isinstance(spec.camera, StillCamera) or spec.deep
        self._grid: PixelGrid | None = None
        self.buffers = EscapeBuffers.for_grid(
            self._grid_for(spec.view_at(0)),
            want_r2=spec.colouring is not Colormap.classic,
            want_roots=spec.fractal is FractalKind.newton,
            want_distance=self._distance,
        )
        self.view = spec.view_at(0)
        self._hi_rgb = np.empty((*self.buffers.counts.shape, 3), np.uint8)
        self._rgb = (
            self._hi_rgb if factor == 1 else np.empty((spec.height, spec.width, 3), np.uint8)
        )
        self._pool: ThreadPoolExecutor | None = None

    @property
    def grid(self) -> PixelGrid:
        """The grid of the last frame computed (of frame 0 before any)."""
        assert self._grid is not None
        return self._grid

    def _grid_for(self, view: View) -> PixelGrid:
        if self._grid is None or self._grid.view != view:
            width, height = self._size
            self._grid = PixelGrid.for_view(
                width, height, view.center, view.scale, view.rotation, view
            )
        return self._grid

    def kernel_for_view(self, view: View) -> Kernel:
        if self._deep_kernel is not None and (view.scale < PERTURBATION_BELOW or self._distance):
            return self._deep_kernel
        return self._float_kernel

    def escape_counts(self, frame: int) -> np.ndarray:
        """Escape counts of ``frame`` at the supersampled resolution (a reused buffer)."""
        return self._compute(frame, colour=False)

    def _compute(self, frame: int, colour: bool) -> np.ndarray:
        """The escape counts of ``frame``; with ``colour``, its colours too (band by band
        in the threads that computed them where every pixel's colour is its own)."""
        spec = self.spec
        self.view = spec.view_at(frame)
        grid = self._grid_for(self.view)
        kernel = self.kernel_for_view(self.view)
        c = spec.c_at(frame)
        kernel.prepare(c, grid, spec.max_iter, self._bailout2, self.keepalive)
        symmetry = kernel.symmetry(c, grid)
        height = grid.height
        rows = height if symmetry is Symmetry.NONE else (height + 1) // 2
        band = DEEP_BAND_ROWS if kernel is self._deep_kernel else FLOAT_BAND_ROWS
        # Colours per band need the whole frame computed by bands: no histogram, no
        # symmetric half copied afterwards.
        colour_bands = colour and symmetry is Symmetry.NONE and self._per_pixel_colours
        if self.threads > 1:
            band = max(1, min(band, math.ceil(rows / (4 * self.threads))))
        bands = [(start, min(start + band, rows)) for start in range(0, rows, band)]

        def compute(rows_range: tuple[int, int]) -> None:
            start, stop = rows_range
            band_buffers = self.buffers.rows(start, stop)
            kernel.escape_counts(
                c, grid.rows(start, stop), spec.max_iter, self._bailout2, band_buffers
            )
            if colour_bands:
                self._colour(band_buffers, self._hi_rgb[start:stop])

        if self.threads > 1 and len(bands) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="frame")
            for _ in self._pool.map(compute, bands):
                if self.keepalive is not None:
                    self.keepalive()
        else:
            for rows_range in bands:
                compute(rows_range)
                if self.keepalive is not None:
                    self.keepalive()
        if symmetry is not Symmetry.NONE:
            self._copy_symmetric_half(symmetry, rows)
        if colour and not colour_bands:
            self._colour(self.buffers, self._hi_rgb)
        return self.buffers.counts

    def _copy_symmetric_half(self, symmetry: Symmetry, rows: int) -> None:
        """Fill the rows below ``rows`` from their exact images above."""
        height = self.buffers.counts.shape[0]
        rest = height - rows  # rows to fill; an odd height's middle row is its own image
        outputs = [self.buffers.counts, self.buffers.final_r2, self.buffers.roots]
        if self.buffers.distance.shape[1]:
            outputs.append(self.buffers.distance)
        for array in outputs:
            if array.shape[1] == 0:
                continue
            source = array[:rest][::-1]
            array[rows:] = source[:, ::-1] if symmetry is Symmetry.POINT else source
        if symmetry is Symmetry.MIRROR and self.buffers.roots.shape[1]:
            # Conjugation swaps the roots e^(2 pi i / 3) (2) and e^(-2 pi i / 3) (3).
            lower = self.buffers.roots[rows:]
            lower[:] = np.array([0, 1, 3, 2], np.uint8)[lower]

    def _colour(self, buffers: EscapeBuffers, rgb: np.ndarray) -> None:
        """Colours of the counts in ``buffers`` (the frame, or a band of it) into ``rgb``."""
        colorize(
            self.spec.colouring,
            buffers.counts,
            buffers.final_r2,
            self.spec.max_iter,
            rgb,
            period=palette_period(self.view.scale) if self._cyclic else 0.0,
            roots=buffers.roots if buffers.roots.shape[1] else None,
            distance=buffers.distance if buffers.want_distance else None,
        )

    def render(self, frame: int) -> np.ndarray:
        """RGB of ``frame`` as a (height, width, 3) uint8 array, overwritten by the next call."""
        self._compute(frame, colour=True)
        if self.spec.supersample > 1:
            box_downsample(self._hi_rgb, self.spec.supersample, self._rgb)
        return self._rgb

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def warm_kernels() -> None:
    """Load every Numba kernel (compiling it into the on-disk cache the first time).

    The kernels have explicit signatures, so importing them compiles or loads them; running
    one tiny frame of each fractal and colouring also touches every code path once. Call
    it before threads or processes start rendering, so they never race to fill the cache.
    """
    from .yuv import yuv420_frame

    for colormap in Colormap:
        spec = AnimationSpec(width=16, height=16, frames=1, colormap=colormap, supersample=2)
        yuv420_frame(FrameRenderer(spec).render(0))
    for kind in FractalKind:
        FrameRenderer(AnimationSpec(fractal=kind, width=16, height=16, frames=1)).render(0)
    deep = AnimationSpec(
        fractal=FractalKind.mandelbrot,
        center=(Decimal("-1.75"), Decimal("0.01")),
        scale=1e-20,
        camera={"kind": "zoom", "zoom_to": 1e-21},
        shading=Shading.distance,
        width=16,
        height=16,
        frames=2,
        max_iter=200,
    )
    FrameRenderer(deep).render(1)
