"""Newton's method for z^3 - 1: z -> z - (z^3 - 1) / (3 z^2), float64, exact counts.

The pixel is the starting point. The count is the number of steps taken while z is not
yet within ``TOLERANCE`` of one of the three cube roots of unity (at most ``max_iter``:
never converged), ``roots`` the root reached (1: 1, 2: e^(2 pi i / 3), 3: e^(-2 pi i / 3);
0: none) and ``final_r2`` the squared distance to it, which gives a smooth count. The
arithmetic is written out in real numbers in a fixed order, so a plain reference loop
gives the same counts bit for bit, and conjugation commutes with every step exactly: a
view centred on the real axis is mirrored. ``c`` is not used; the bailout neither.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .base import EscapeBuffers, PixelGrid, StatelessKernel, Symmetry
from .mandelbrot import mirror_symmetry

TOLERANCE2 = 1e-12  # squared distance to a root that counts as converged
ROOT_RE = np.array([1.0, -0.5, -0.5])
ROOT_IM = np.array([0.0, 0.8660254037844386, -0.8660254037844386])


@njit(
    "void(float64[:, :], float64[:, :], int64, int32[:, ::1], float64[:, ::1], uint8[:, ::1],"
    " float64[::1], float64[::1])",
    nogil=True,
    cache=True,
)
def newton_counts(
    re: np.ndarray,
    im: np.ndarray,
    max_iter: int,
    counts: np.ndarray,
    final_r2: np.ndarray,
    roots: np.ndarray,
    root_re: np.ndarray,
    root_im: np.ndarray,
) -> None:
    rows, width = counts.shape
    for row in range(rows):
        for column in range(width):
            x = re[row, column]
            y = im[row, column]
            n = 0
            found = 0
            distance2 = 0.0
            while True:
                for r in range(3):
                    dx = x - root_re[r]
                    dy = y - root_im[r]
                    d2 = dx * dx + dy * dy
                    if d2 < TOLERANCE2:
                        found = r + 1
                        distance2 = d2
                if found or n >= max_iter:
                    break
                x2 = x * x - y * y  # z²
                y2 = 2.0 * x * y
                num_r = x2 * x - y2 * y - 1.0  # z³ - 1
                num_i = x2 * y + y2 * x
                den_r = 3.0 * x2  # 3 z²
                den_i = 3.0 * y2
                norm = den_r * den_r + den_i * den_i
                if norm == 0.0:
                    n = max_iter  # the critical point: no Newton step exists
                    break
                x = x - (num_r * den_r + num_i * den_i) / norm
                y = y - (num_i * den_r - num_r * den_i) / norm
                n += 1
            counts[row, column] = n
            final_r2[row, column] = distance2
            if roots.shape[1]:
                roots[row, column] = found


class NewtonKernel(StatelessKernel):
    def symmetry(self, c: complex, grid: PixelGrid) -> Symmetry:
        return mirror_symmetry(grid)

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None:
        re, im = grid.coordinates()
        newton_counts(re, im, max_iter, out.counts, out.final_r2, out.roots, ROOT_RE, ROOT_IM)
