"""Tricorn (Mandelbar): z -> conj(z)² + c, float64, exact escape counts.

Conjugating c conjugates the whole orbit exactly in floating point, so a parameter-plane
view centred on the real axis is mirrored (its top half iterated only); the Julia form is
even in z, so a Julia view centred on the origin is symmetric under z -> -z. The loop is
the shared driver of ``escape.py``.
"""

from __future__ import annotations

from .base import EscapeBuffers, PixelGrid, StatelessKernel, Symmetry
from .escape import TRICORN, family_counts
from .mandelbrot import mirror_symmetry


class TricornKernel(StatelessKernel):
    def __init__(self, julia: bool = False) -> None:
        self.julia = julia

    def symmetry(self, c: complex, grid: PixelGrid) -> Symmetry:
        if self.julia:
            return Symmetry.POINT if grid.center == 0 else Symmetry.NONE
        return mirror_symmetry(grid)

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None:
        re, im = grid.coordinates()
        family_counts(
            re,
            im,
            TRICORN,
            2,
            self.julia,
            c.real,
            c.imag,
            max_iter,
            bailout2,
            out.counts,
            out.final_r2,
            out.want_r2,
        )
