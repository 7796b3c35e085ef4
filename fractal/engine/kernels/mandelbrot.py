"""Mandelbrot set escape-time kernel: z -> z**2 + c from z0 = 0, c = the pixel, float64.

The count is the number of iterations done while |z|**2 <= bailout2 (the first, from
z0 = 0, always is), at most ``max_iter`` (= inside), the same loop as the Julia kernel's
with z0 = 0 and c taken from the pixel. What makes it fast without changing a count:

- Interior tests. Points of the main cardioid and of the period-2 bulb are inside the set:
  they get ``max_iter`` without iterating (the largest black areas of most views).
- Mirror symmetry. The set is symmetric about the real axis and conjugating c conjugates
  the whole orbit exactly in floating point, so of a view centred on the real axis the
  frame renderer iterates the top half only (row j and row height - 1 - j have exactly
  opposite imaginary parts: ``Symmetry.MIRROR``).
- SIMD passes and exact cycle detection, as in the Julia kernel: fixed-length branch-free
  passes over blocks of ``LANES`` pixels, survivors compacted between passes, and a pixel
  whose z returns bit for bit to an earlier value is inside.

This float64 kernel is exact down to a view half-height of about 1e-12; deeper views need
perturbation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .base import EscapeBuffers, PixelGrid, StatelessKernel, Symmetry

LANES = 32
TILE = 2048
FIRST_PASS = 8
LONGEST_PASS = 64
CYCLE_CHECKS_FROM = 16

# Rows of the per-block lane state.
ZR, ZI, CR, CI, ALIVE, COUNT, START_R, START_I = range(8)
FIELDS = 8


@njit("boolean(float64, float64)", nogil=True, cache=True, inline="always")
def in_cardioid_or_bulb(x: float, y: float) -> bool:
    """Inside the main cardioid or the period-2 bulb (both entirely in the set)."""
    y2 = y * y
    shifted = x - 0.25
    q = shifted * shifted + y2
    if q * (q + shifted) <= 0.25 * y2:
        return True
    plus_one = x + 1.0
    return plus_one * plus_one + y2 <= 0.0625


@njit("void(float64[:, :, ::1], float64, int64, int64, boolean)", nogil=True, cache=True)
def _iterate(state: np.ndarray, bailout2: float, blocks: int, steps: int, check: bool) -> None:
    """``steps`` iterations of every lane of the first ``blocks`` blocks, in place; with
    ``check``, a lane whose z returns to its value at the start of the pass gets -1."""
    for block in range(blocks):
        lane = state[block]
        for k in range(LANES):
            lane[START_R, k] = lane[ZR, k]
            lane[START_I, k] = lane[ZI, k]
        for _ in range(steps):
            for k in range(LANES):
                x = lane[ZR, k]
                y = lane[ZI, k]
                x2 = x * x
                y2 = y * y
                go = (lane[ALIVE, k] != 0.0) & (x2 + y2 <= bailout2)
                new_r = x2 - y2 + lane[CR, k]
                new_i = 2.0 * x * y + lane[CI, k]
                cycle = check & go & (new_r == lane[START_R, k]) & (new_i == lane[START_I, k])
                lane[ZR, k] = new_r if go else x
                lane[ZI, k] = new_i if go else y
                n = lane[COUNT, k]
                lane[COUNT, k] = -1.0 if cycle else (n + 1.0 if go else n)
                lane[ALIVE, k] = 1.0 if (go & ~cycle) else 0.0


@njit(
    "void(float64[:, :, ::1], int64[::1], int64, int64, int64, float64, int32[:, ::1],"
    " float64[:, ::1], boolean)",
    nogil=True,
    cache=True,
)
def _finish(
    state: np.ndarray,
    slot: np.ndarray,
    pending: int,
    done: int,
    max_iter: int,
    bailout2: float,
    counts: np.ndarray,
    final_r2: np.ndarray,
    want_r2: bool,
) -> None:
    """Iterate the queued survivors (``done`` iterations in) to the end; ``slot`` holds
    each one's flat pixel index."""
    width = counts.shape[1]
    steps = 2 * FIRST_PASS
    while pending > 0 and done < max_iter:
        steps = min(steps, max_iter - done)
        blocks = (pending + LANES - 1) // LANES
        for k in range(pending, blocks * LANES):
            state[k // LANES, ALIVE, k % LANES] = 0.0
        _iterate(state, bailout2, blocks, steps, done >= CYCLE_CHECKS_FROM)
        done += steps
        steps = min(2 * steps, LONGEST_PASS)
        kept = 0
        for k in range(pending):
            block = state[k // LANES]
            lane = k % LANES
            n = block[COUNT, lane]
            pixel = slot[k]
            row, column = pixel // width, pixel % width
            counts[row, column] = np.int32(max_iter if n < 0.0 else n)
            if want_r2:
                x = block[ZR, lane]
                y = block[ZI, lane]
                final_r2[row, column] = x * x + y * y
            if block[ALIVE, lane] != 0.0:
                target = state[kept // LANES]
                for field in range(FIELDS):
                    target[field, kept % LANES] = block[field, lane]
                slot[kept] = pixel
                kept += 1
        pending = kept


@njit(
    "void(float64[:, :], float64[:, :], int64, float64, int32[:, ::1], float64[:, ::1], boolean)",
    nogil=True,
    cache=True,
)
def escape_counts(
    re: np.ndarray,
    im: np.ndarray,
    max_iter: int,
    bailout2: float,
    counts: np.ndarray,
    final_r2: np.ndarray,
    want_r2: bool,
) -> None:
    """Counts of c = re[j, i] + 1j * im[j, i] (any strides) into ``counts[j, i]``."""
    rows, width = counts.shape
    first_steps = min(FIRST_PASS, max_iter)
    state = np.zeros((TILE // LANES + 2, FIELDS, LANES))
    slot = np.zeros(TILE + 2 * LANES, np.int64)
    lane_r = np.empty(LANES)
    lane_i = np.empty(LANES)
    lane_cr = np.empty(LANES)
    lane_ci = np.empty(LANES)
    lane_alive = np.empty(LANES)
    lane_count = np.empty(LANES)
    pending = 0
    for row in range(rows):
        for column in range(0, width, LANES):
            used = min(LANES, width - column)
            for k in range(LANES):
                x = re[row, column + k] if k < used else 0.0
                y = im[row, column + k] if k < used else 0.0
                lane_cr[k] = x
                lane_ci[k] = y
                lane_r[k] = 0.0
                lane_i[k] = 0.0
                lane_count[k] = 0.0
                inside = k >= used or in_cardioid_or_bulb(x, y)
                lane_alive[k] = 0.0 if inside else 1.0
                if k < used and inside:
                    lane_count[k] = -1.0  # inside: no iteration needed
            for _ in range(first_steps):
                for k in range(LANES):
                    x = lane_r[k]
                    yy = lane_i[k]
                    x2 = x * x
                    y2 = yy * yy
                    go = (lane_alive[k] != 0.0) & (x2 + y2 <= bailout2)
                    lane_r[k] = (x2 - y2 + lane_cr[k]) if go else x
                    lane_i[k] = (2.0 * x * yy + lane_ci[k]) if go else yy
                    lane_count[k] += 1.0 if go else 0.0
                    lane_alive[k] = 1.0 if go else 0.0
            for k in range(used):
                n = lane_count[k]
                counts[row, column + k] = np.int32(max_iter if n < 0.0 else n)
                if want_r2:
                    final_r2[row, column + k] = lane_r[k] * lane_r[k] + lane_i[k] * lane_i[k]
                if lane_alive[k] != 0.0 and first_steps < max_iter:
                    target = state[pending // LANES]
                    lane = pending % LANES
                    target[ZR, lane] = lane_r[k]
                    target[ZI, lane] = lane_i[k]
                    target[CR, lane] = lane_cr[k]
                    target[CI, lane] = lane_ci[k]
                    target[COUNT, lane] = lane_count[k]
                    target[ALIVE, lane] = 1.0
                    slot[pending] = row * width + column + k
                    pending += 1
            if pending > TILE:
                _finish(
                    state, slot, pending, first_steps, max_iter, bailout2, counts, final_r2, want_r2
                )
                pending = 0
    _finish(state, slot, pending, first_steps, max_iter, bailout2, counts, final_r2, want_r2)


def mirror_symmetry(grid: PixelGrid) -> Symmetry:
    """Conjugation maps an unrotated grid centred on the real axis onto itself."""
    return Symmetry.MIRROR if grid.center.imag == 0.0 and not grid.rotated else Symmetry.NONE


class MandelbrotKernel(StatelessKernel):
    """c = the pixel, z0 = 0; the frame's own c is not used."""

    def symmetry(self, c: complex, grid: PixelGrid) -> Symmetry:
        return mirror_symmetry(grid)

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None:
        re, im = grid.coordinates()
        escape_counts(re, im, max_iter, bailout2, out.counts, out.final_r2, out.want_r2)
