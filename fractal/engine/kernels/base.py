"""What every kernel shares: the pixel grid it samples, the buffers it fills, its interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class PixelGrid:
    """The points a frame samples: column real parts, row imaginary parts (row 0 on top)."""

    xs: np.ndarray  # float64, C-contiguous
    ys: np.ndarray  # float64, C-contiguous
    center: complex  # the view's centre (kernels may exploit symmetry about it)

    @classmethod
    def for_view(cls, width: int, height: int, center: complex, scale: float) -> PixelGrid:
        """Pixel centres of a ``width`` x ``height`` view ``2 * scale`` high around ``center``.

        Centres sit at (i + 0.5) / width of the view. The offsets are computed from the odd
        integers 2i + 1 - width, so column i and column width - 1 - i are exact negatives
        of each other about the centre, which is what makes mirroring a frame bit-exact.
        """
        pixel = scale / height  # half a pixel's size
        columns = np.arange(width, dtype=np.float64)
        rows = np.arange(height, dtype=np.float64)
        xs = center.real + (2.0 * columns + 1.0 - width) * pixel
        ys = center.imag + (height - 1.0 - 2.0 * rows) * pixel
        return cls(np.ascontiguousarray(xs), np.ascontiguousarray(ys), center)


@dataclass(frozen=True)
class EscapeBuffers:
    """Where a kernel writes: one element per pixel of the grid, reused frame after frame."""

    counts: np.ndarray  # int32 (rows, columns): iterations while |z|² <= bailout²
    final_r2: np.ndarray  # float64 (rows, columns): |z|² after escape, if ``want_r2``
    want_r2: bool

    @classmethod
    def for_grid(cls, grid: PixelGrid, want_r2: bool) -> EscapeBuffers:
        shape = (grid.ys.size, grid.xs.size)
        return cls(np.empty(shape, np.int32), np.empty(shape, np.float64), want_r2)


class Kernel(Protocol):
    """An escape-time fractal: counts for every pixel of ``grid`` into ``out``.

    ``counts`` must equal the textbook loop exactly: the number of iterations done while
    |z|² <= ``bailout2``, at most ``max_iter`` (= interior). ``c`` is the frame's parameter
    (the Julia constant; kernels that take c from the pixel ignore it).
    """

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None: ...
