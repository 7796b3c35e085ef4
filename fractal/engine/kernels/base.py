"""What every kernel shares: the pixel grid it samples, the buffers it fills, its interface."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum
from typing import Protocol

import numpy as np
from numpy.lib.stride_tricks import as_strided

from fractal.spec import View


@dataclass(frozen=True)
class PixelGrid:
    """The points a frame (or a band of its rows) samples.

    Pixel (i, j) is ``center + turn * (us[i] + 1j * vs[j])``: ``us`` and ``vs`` are the
    offsets of the column and row centres from the view's centre (row 0 on top), ``turn``
    the view's rotation. ``xs`` and ``ys`` are the absolute coordinates of an unrotated
    grid, what the float64 kernels read; ``view`` keeps the exact (decimal) centre that the
    perturbation kernel needs.
    """

    xs: np.ndarray  # float64, C-contiguous
    ys: np.ndarray  # float64, C-contiguous
    center: complex  # the view's centre (kernels may exploit symmetry about it)
    us: np.ndarray  # float64, C-contiguous: column offsets from the centre
    vs: np.ndarray  # float64, C-contiguous: row offsets from the centre
    view: View
    pixel: float  # half a pixel's size
    first_row: int = 0  # of the frame, for a band

    @classmethod
    def for_view(
        cls,
        width: int,
        height: int,
        center: complex,
        scale: float,
        rotation: float = 0.0,
        view: View | None = None,
    ) -> PixelGrid:
        """Pixel centres of a ``width`` x ``height`` view ``2 * scale`` high around ``center``.

        Centres sit at (i + 0.5) / width of the view. The offsets are computed from the odd
        integers 2i + 1 - width, so column i and column width - 1 - i are exact negatives
        of each other about the centre, which is what makes mirroring a frame bit-exact.
        """
        pixel = scale / height  # half a pixel's size
        columns = np.arange(width, dtype=np.float64)
        rows = np.arange(height, dtype=np.float64)
        us = np.ascontiguousarray((2.0 * columns + 1.0 - width) * pixel)
        vs = np.ascontiguousarray((height - 1.0 - 2.0 * rows) * pixel)
        if view is None:
            view = View(Decimal(repr(center.real)), Decimal(repr(center.imag)), scale, rotation)
        return cls(
            np.ascontiguousarray(center.real + us),
            np.ascontiguousarray(center.imag + vs),
            center,
            us,
            vs,
            view,
            pixel,
        )

    @property
    def width(self) -> int:
        return int(self.xs.size)

    @property
    def height(self) -> int:
        return int(self.ys.size)

    @property
    def rotated(self) -> bool:
        return self.view.rotation != 0.0

    def rows(self, start: int, stop: int) -> PixelGrid:
        """The band of rows ``start .. stop - 1``."""
        return replace(
            self,
            ys=self.ys[start:stop],
            vs=self.vs[start:stop],
            first_row=self.first_row + start,
        )

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Real and imaginary parts of every pixel, (rows, columns) each.

        Unrotated, these are zero-copy broadcasts of ``xs`` and ``ys`` (the float64 kernels
        take any strides); rotated, they are computed (one band at a time, so the memory
        stays small).
        """
        shape = (self.ys.size, self.xs.size)
        if not self.rotated:
            # Writable stride-0 views (numba's signatures take writable arrays); never
            # written to.
            return (
                as_strided(self.xs, shape, (0, self.xs.strides[0])),
                as_strided(self.ys, shape, (self.ys.strides[0], 0)),
            )
        cos, sin = math.cos(self.view.rotation), math.sin(self.view.rotation)
        us, vs = self.us[None, :], self.vs[:, None]
        re = self.center.real + (us * cos - vs * sin)
        im = self.center.imag + (us * sin + vs * cos)
        return re, im


@dataclass(frozen=True)
class EscapeBuffers:
    """Where a kernel writes: one element per pixel of the grid, reused frame after frame.

    The optional outputs have zero columns when not wanted, so every kernel has one
    signature and a band is a slice of rows of each.
    """

    counts: np.ndarray  # int32 (rows, columns): iterations while |z|² <= bailout²
    final_r2: np.ndarray  # float64 (rows, columns): |z|² after escape, if ``want_r2``
    want_r2: bool
    roots: np.ndarray  # uint8 (rows, columns or 0): newton, the root reached
    distance: np.ndarray  # float64 (rows, columns or 0): distance estimate in pixels

    @classmethod
    def for_grid(
        cls,
        grid: PixelGrid,
        want_r2: bool,
        *,
        want_roots: bool = False,
        want_distance: bool = False,
    ) -> EscapeBuffers:
        shape = (grid.ys.size, grid.xs.size)
        none = (grid.ys.size, 0)
        return cls(
            np.empty(shape, np.int32),
            np.empty(shape, np.float64),
            want_r2,
            np.zeros(shape if want_roots else none, np.uint8),
            np.zeros(shape if want_distance else none, np.float64),
        )

    @property
    def want_distance(self) -> bool:
        return self.distance.shape[1] > 0

    def rows(self, start: int, stop: int) -> EscapeBuffers:
        return EscapeBuffers(
            self.counts[start:stop],
            self.final_r2[start:stop],
            self.want_r2,
            self.roots[start:stop],
            self.distance[start:stop],
        )


class Symmetry(Enum):
    """How a frame's bottom half follows from its top half, exactly."""

    NONE = "none"
    MIRROR = "mirror"  # row height-1-j is row j (conjugate symmetry about a real centre)
    POINT = "point"  # pixel (w-1-i, h-1-j) is pixel (i, j) (z -> -z about the origin)


Keepalive = Callable[[], None]


class Kernel(Protocol):
    """An escape-time fractal: counts for every pixel of ``grid`` into ``out``.

    ``counts`` must equal the textbook loop exactly (float64 kernels; the perturbation
    kernel to within its tested tolerance): the number of iterations done while |z|² <=
    ``bailout2``, at most ``max_iter`` (= interior). ``c`` is the frame's parameter (the
    Julia constant; kernels that take c from the pixel ignore it).

    The frame renderer calls ``prepare`` once per frame with the whole grid (per-frame
    work such as a reference orbit, which calls ``keepalive`` now and then so a long one
    can heartbeat), then ``escape_counts`` on bands of rows, possibly from several threads
    at once, so ``escape_counts`` must not change the kernel's state. ``symmetry`` tells
    which rows it may skip and copy instead.
    """

    def symmetry(self, c: complex, grid: PixelGrid) -> Symmetry: ...

    def prepare(
        self,
        c: complex,
        grid: PixelGrid,
        max_iter: int,
        bailout2: float,
        keepalive: Keepalive | None = None,
    ) -> None: ...

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None: ...


class StatelessKernel:
    """Base of the float64 kernels: nothing to prepare per frame."""

    def symmetry(self, c: complex, grid: PixelGrid) -> Symmetry:
        return Symmetry.NONE

    def prepare(
        self,
        c: complex,
        grid: PixelGrid,
        max_iter: int,
        bailout2: float,
        keepalive: Keepalive | None = None,
    ) -> None:
        return None
