"""Burning ship: z -> (|Re z| + i |Im z|)² + c, float64, exact escape counts.

In the parameter plane (z0 = 0, c = the pixel) the ship sits upside down at Im c < 0 in
the usual orientation of the imaginary axis (up); the Julia form iterates the pixel with
the frame's c. Folding both parts to their absolute values makes the map even, so a Julia
view centred on the origin is symmetric under z -> -z; the parameter plane has no exact
symmetry. The loop itself is the shared driver of ``escape.py``.
"""

from __future__ import annotations

from .base import EscapeBuffers, PixelGrid, StatelessKernel, Symmetry
from .escape import BURNING_SHIP, family_counts


class BurningShipKernel(StatelessKernel):
    def __init__(self, julia: bool = False) -> None:
        self.julia = julia

    def symmetry(self, c: complex, grid: PixelGrid) -> Symmetry:
        return Symmetry.POINT if self.julia and grid.center == 0 else Symmetry.NONE

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None:
        re, im = grid.coordinates()
        family_counts(
            re,
            im,
            BURNING_SHIP,
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
