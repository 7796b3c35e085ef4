"""Multibrot: z -> z^d + c for d = ``power`` (3..8), float64, exact escape counts.

z^d is d - 1 complex multiplications (vectorised across lanes, one multiplication at a
time). Conjugation commutes with it exactly, so a parameter-plane view centred on the
real axis is mirrored; for even d the Julia form is even in z, so a Julia view centred on
the origin is symmetric under z -> -z. The loop is the shared driver of ``escape.py``.
"""

from __future__ import annotations

from .base import EscapeBuffers, PixelGrid, StatelessKernel, Symmetry
from .escape import MULTIBROT, family_counts
from .mandelbrot import mirror_symmetry


class MultibrotKernel(StatelessKernel):
    def __init__(self, power: int, julia: bool = False) -> None:
        self.power = power
        self.julia = julia

    def symmetry(self, c: complex, grid: PixelGrid) -> Symmetry:
        if self.julia:
            even = self.power % 2 == 0
            return Symmetry.POINT if even and grid.center == 0 else Symmetry.NONE
        return mirror_symmetry(grid)

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None:
        re, im = grid.coordinates()
        family_counts(
            re,
            im,
            MULTIBROT,
            self.power,
            self.julia,
            c.real,
            c.imag,
            max_iter,
            bailout2,
            out.counts,
            out.final_r2,
            out.want_r2,
        )
