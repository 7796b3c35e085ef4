"""Julia set escape-time kernel: z -> z**2 + c, float64, exact escape counts.

What makes it fast, without changing a single count:
- Symmetry. Julia sets are symmetric under z -> -z. The pixel grid is centred on the view
  (pixel centres at (i + 0.5) / w), so for a view centred on the origin the bottom half of
  the frame is the top half turned by 180 degrees, bit for bit: the frame renderer
  iterates only half (``Symmetry.POINT``).
- SIMD passes. The pixels of a tile are iterated in blocks of ``LANES`` by loops with a
  fixed trip count and no branches (an escaped lane is frozen by a select), which LLVM
  vectorises. After each pass the unfinished pixels are compacted to the front, so the
  next, longer pass works on dense blocks instead of idling on escaped lanes.
- Exact cycle detection. Once pixels have survived a few passes, each pass remembers z at
  its start; if z comes back to that value bit for bit, the float orbit is periodic and
  can never escape, so the pixel is interior (count = max_iter) exactly as if all
  iterations had been run.
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
ZR, ZI, ALIVE, COUNT, START_R, START_I = range(6)
FIELDS = 6


@njit(
    "void(float64[:, :, ::1], float64, float64, float64, int64, int64, boolean)",
    nogil=True,
    cache=True,
)
def _iterate(
    state: np.ndarray,
    cr: float,
    ci: float,
    bailout2: float,
    blocks: int,
    steps: int,
    check_cycles: bool,
) -> None:
    """``steps`` iterations of every lane of the first ``blocks`` blocks, in place.

    ``state[block, field, lane]`` keeps each field of a block contiguous, so the lane loop
    is a plain unit-stride loop over one array that LLVM can vectorise. With
    ``check_cycles`` a lane whose z returns bit for bit to its value at the start of the
    pass is on a periodic float orbit that can never escape: it gets count = -1.
    """
    for block in range(blocks):
        lane = state[block]
        if check_cycles:
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
                    new_r = x2 - y2 + cr
                    new_i = 2.0 * x * y + ci
                    cycle = go & (new_r == lane[START_R, k]) & (new_i == lane[START_I, k])
                    lane[ZR, k] = new_r if go else x
                    lane[ZI, k] = new_i if go else y
                    n = lane[COUNT, k]
                    lane[COUNT, k] = -1.0 if cycle else (n + 1.0 if go else n)
                    lane[ALIVE, k] = 1.0 if (go & ~cycle) else 0.0
        else:
            for _ in range(steps):
                for k in range(LANES):
                    x = lane[ZR, k]
                    y = lane[ZI, k]
                    x2 = x * x
                    y2 = y * y
                    go = (lane[ALIVE, k] != 0.0) & (x2 + y2 <= bailout2)
                    lane[ZR, k] = (x2 - y2 + cr) if go else x
                    lane[ZI, k] = (2.0 * x * y + ci) if go else y
                    lane[COUNT, k] += 1.0 if go else 0.0
                    lane[ALIVE, k] = 1.0 if go else 0.0


@njit(
    "void(float64[:, :, ::1], int64[::1], int64, int64, float64, float64, int64, float64,"
    " int32[::1], float64[::1], boolean)",
    nogil=True,
    cache=True,
)
def _finish_survivors(
    state: np.ndarray,
    slot: np.ndarray,
    pending: int,
    done: int,
    cr: float,
    ci: float,
    max_iter: int,
    bailout2: float,
    flat_counts: np.ndarray,
    flat_r2: np.ndarray,
    want_r2: bool,
) -> None:
    """Iterate pixels that survived the first pass (all ``done`` iterations in) to the end.

    Passes get longer as pixels escape; after each pass every pixel's current result is
    written (branch-free; unfinished ones are overwritten by a later pass) and the
    unfinished ones are compacted to the front so the next pass runs on dense blocks.
    """
    steps = 2 * FIRST_PASS
    while pending > 0 and done < max_iter:
        steps = min(steps, max_iter - done)
        blocks = (pending + LANES - 1) // LANES
        for k in range(pending, blocks * LANES):
            state[k // LANES, ALIVE, k % LANES] = 0.0  # padding lanes stay frozen
        _iterate(state, cr, ci, bailout2, blocks, steps, done >= CYCLE_CHECKS_FROM)
        done += steps
        steps = min(2 * steps, LONGEST_PASS)

        kept = 0
        for k in range(pending):
            block = state[k // LANES]
            lane = k % LANES
            x = block[ZR, lane]
            y = block[ZI, lane]
            n = block[COUNT, lane]
            unfinished = 1 if block[ALIVE, lane] != 0.0 else 0
            pixel = slot[k]
            # A detected cycle (-1) is interior; lanes still going after max_iter
            # iterations already have count == max_iter.
            value = np.int32(max_iter if n < 0.0 else n)
            flat_counts[pixel] = value
            if want_r2:
                flat_r2[pixel] = x * x + y * y
            target = state[kept // LANES]
            target[ZR, kept % LANES] = x
            target[ZI, kept % LANES] = y
            target[COUNT, kept % LANES] = n
            target[ALIVE, kept % LANES] = 1.0
            slot[kept] = pixel
            kept += unfinished
        pending = kept


@njit(
    "void(float64[:, :], float64[:, :], float64, float64, int64, float64,"
    " int32[:, ::1], float64[:, ::1], boolean)",
    nogil=True,
    cache=True,
)
def escape_counts(
    re: np.ndarray,
    im: np.ndarray,
    cr: float,
    ci: float,
    max_iter: int,
    bailout2: float,
    counts: np.ndarray,
    final_r2: np.ndarray,
    want_r2: bool,
) -> None:
    """Fill ``counts[j, i]`` with the escape count of z0 = re[j, i] + 1j * im[j, i].

    The count is the number of iterations done while |z|**2 <= ``bailout2``, at most
    ``max_iter`` (= interior). With ``want_r2``, ``final_r2`` gets |z|**2 of the first z
    outside the bailout (for smooth colouring); otherwise it is not touched. ``re`` and
    ``im`` may have any strides (an unrotated grid passes broadcast rows and columns).

    Most pixels escape within a few iterations, so the first pass runs straight along the
    rows, ``LANES`` pixels at a time, and writes their results in order; only the pixels
    still going afterwards are queued for the longer passes of ``_finish_survivors``.
    """
    height, width = counts.shape
    flat_counts = counts.reshape(height * width)
    flat_r2 = final_r2.reshape(height * width)
    first_steps = min(FIRST_PASS, max_iter)

    lane_r = np.empty(LANES)
    lane_i = np.empty(LANES)
    lane_alive = np.empty(LANES)
    lane_count = np.empty(LANES)

    state = np.zeros((TILE // LANES + 2, FIELDS, LANES))
    slot = np.zeros(TILE + 2 * LANES, np.int64)
    pending = 0

    for row in range(height):
        for col in range(0, width, LANES):
            used = min(LANES, width - col)
            for k in range(LANES):
                inside = k < used
                lane_r[k] = re[row, col + k] if inside else 0.0
                lane_i[k] = im[row, col + k] if inside else 0.0
                lane_alive[k] = 1.0 if inside else 0.0
                lane_count[k] = 0.0
            for _ in range(first_steps):
                for k in range(LANES):
                    x = lane_r[k]
                    yy = lane_i[k]
                    x2 = x * x
                    y2 = yy * yy
                    go = (lane_alive[k] != 0.0) & (x2 + y2 <= bailout2)
                    lane_r[k] = (x2 - y2 + cr) if go else x
                    lane_i[k] = (2.0 * x * yy + ci) if go else yy
                    lane_count[k] += 1.0 if go else 0.0
                    lane_alive[k] = 1.0 if go else 0.0

            start = row * width + col
            for k in range(used):
                flat_counts[start + k] = np.int32(lane_count[k])
            if want_r2:
                for k in range(used):
                    flat_r2[start + k] = lane_r[k] * lane_r[k] + lane_i[k] * lane_i[k]
            survivors = 0.0
            for k in range(LANES):
                survivors += lane_alive[k]
            if survivors > 0.0 and first_steps < max_iter:
                # Queue the survivors for the longer passes (their results above are
                # temporary).
                for k in range(used):
                    if lane_alive[k] != 0.0:
                        target = state[pending // LANES]
                        target[ZR, pending % LANES] = lane_r[k]
                        target[ZI, pending % LANES] = lane_i[k]
                        target[COUNT, pending % LANES] = lane_count[k]
                        target[ALIVE, pending % LANES] = 1.0
                        slot[pending] = start + k
                        pending += 1
            # Iterate the queue once it is full, and at the very end.
            if pending > TILE or (row == height - 1 and col + LANES >= width):
                _finish_survivors(
                    state,
                    slot,
                    pending,
                    first_steps,
                    cr,
                    ci,
                    max_iter,
                    bailout2,
                    flat_counts,
                    flat_r2,
                    want_r2,
                )
                pending = 0


class JuliaKernel(StatelessKernel):
    """z -> z² + c from z0 = the pixel, c fixed for the frame."""

    def symmetry(self, c: complex, grid: PixelGrid) -> Symmetry:
        # z -> -z maps the grid onto itself when it is centred on the origin.
        return Symmetry.POINT if grid.center == 0 else Symmetry.NONE

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None:
        re, im = grid.coordinates()
        escape_counts(
            re, im, c.real, c.imag, max_iter, bailout2, out.counts, out.final_r2, out.want_r2
        )
