"""Julia set escape-time kernel: z -> z**2 + c, float64, exact escape counts.

What makes it fast, without changing a single count:
- Symmetry. Julia sets are symmetric under z -> -z. The pixel grid is centred on the view
  (pixel centres at (i + 0.5) / w), so for a view centred on the origin the bottom half of
  the frame is the top half turned by 180 degrees, bit for bit: only half is iterated.
- SIMD lanes. ``LANES`` pixels are iterated together for ``STEP`` iterations by a loop with
  a fixed trip count and no branches (an escaped lane is frozen by a select), which LLVM
  vectorises. Between steps, lanes whose pixel is finished are refilled with the next
  pixel, so a slow pixel does not hold the others back.
- Exact cycle detection. A lane remembers z at doubling intervals (Brent); if z comes back
  to that value bit for bit, the float orbit is periodic and can never escape, so the
  pixel is interior (count = max_iter) exactly as if all iterations had been run.
"""

from __future__ import annotations

import numpy as np
from numba import njit

LANES = 32
TILE = 2048
FIRST_PASS = 8
LONGEST_PASS = 64
CYCLE_CHECKS_FROM = 16


@njit(
    "void(float64[::1], float64[::1], float64[::1], float64[::1],"
    " float64, float64, float64, int64, int64, boolean)",
    nogil=True,
    cache=True,
)
def _iterate(
    zr: np.ndarray,
    zi: np.ndarray,
    alive: np.ndarray,
    count: np.ndarray,
    cr: float,
    ci: float,
    bailout2: float,
    lanes: int,
    steps: int,
    check_cycles: bool,
) -> None:
    """``steps`` iterations of every lane; escaped lanes are frozen, not branched around.

    With ``check_cycles`` a lane whose z returns bit for bit to its value at the start of
    the pass is on a periodic float orbit that can never escape; it is marked with
    count = -1 and frozen.
    """
    # Lanes are copied into small local arrays first: LLVM cannot prove that the caller's
    # arrays do not overlap and would not vectorise the loop over them.
    lane_r = np.empty(LANES)
    lane_i = np.empty(LANES)
    lane_alive = np.empty(LANES)
    lane_count = np.empty(LANES)
    start_r = np.empty(LANES)
    start_i = np.empty(LANES)
    for base in range(0, lanes, LANES):
        for k in range(LANES):
            lane_r[k] = zr[base + k]
            lane_i[k] = zi[base + k]
            lane_alive[k] = alive[base + k]
            lane_count[k] = count[base + k]
        if check_cycles:
            for k in range(LANES):
                start_r[k] = lane_r[k]
                start_i[k] = lane_i[k]
            for _ in range(steps):
                for k in range(LANES):
                    x = lane_r[k]
                    y = lane_i[k]
                    x2 = x * x
                    y2 = y * y
                    go = (lane_alive[k] != 0.0) & (x2 + y2 <= bailout2)
                    new_r = x2 - y2 + cr
                    new_i = 2.0 * x * y + ci
                    cycle = go & (new_r == start_r[k]) & (new_i == start_i[k])
                    lane_r[k] = new_r if go else x
                    lane_i[k] = new_i if go else y
                    n = lane_count[k]
                    lane_count[k] = -1.0 if cycle else (n + 1.0 if go else n)
                    lane_alive[k] = 1.0 if (go & ~cycle) else 0.0
        else:
            for _ in range(steps):
                for k in range(LANES):
                    x = lane_r[k]
                    y = lane_i[k]
                    x2 = x * x
                    y2 = y * y
                    go = (lane_alive[k] != 0.0) & (x2 + y2 <= bailout2)
                    lane_r[k] = (x2 - y2 + cr) if go else x
                    lane_i[k] = (2.0 * x * y + ci) if go else y
                    lane_count[k] += 1.0 if go else 0.0
                    lane_alive[k] = 1.0 if go else 0.0
        for k in range(LANES):
            zr[base + k] = lane_r[k]
            zi[base + k] = lane_i[k]
            alive[base + k] = lane_alive[k]
            count[base + k] = lane_count[k]


@njit(
    "void(float64[::1], float64[::1], float64, float64, int64, float64,"
    " int32[:, ::1], float64[:, ::1], boolean)",
    nogil=True,
    cache=True,
)
def escape_counts(
    xs: np.ndarray,
    ys: np.ndarray,
    cr: float,
    ci: float,
    max_iter: int,
    bailout2: float,
    counts: np.ndarray,
    final_r2: np.ndarray,
    mirror: bool,
) -> None:
    """Fill ``counts[j, i]`` with the escape count of z0 = xs[i] + 1j * ys[j].

    The count is the number of iterations done while |z|**2 <= ``bailout2``, at most
    ``max_iter`` (= interior). ``final_r2`` gets |z|**2 of the first z outside the bailout
    (for smooth colouring). With ``mirror`` only the top half is iterated and copied to the
    bottom half rotated by 180 degrees; the caller guarantees that xs and ys are exact
    negatives of themselves reversed (a view centred on the origin).

    Pixels are taken a tile at a time. Each pass iterates every unfinished pixel of the
    tile the same number of times, then compacts the unfinished ones to the front
    (branch-free), so passes stay dense as pixels escape.
    """
    height = ys.size
    width = xs.size
    full = height * width
    total = (height // 2 if mirror else height) * width
    padded = TILE + LANES
    flat_counts = counts.reshape(full)
    flat_r2 = final_r2.reshape(full)

    zr = np.zeros(padded)
    zi = np.zeros(padded)
    alive = np.zeros(padded)
    count = np.zeros(padded)
    slot = np.zeros(padded, np.int64)  # position of the lane's pixel in the tile
    tile_counts = np.zeros(TILE, np.int32)
    tile_r2 = np.zeros(TILE)

    for tile_start in range(0, total, TILE):
        pending = min(TILE, total - tile_start)
        filled = 0
        row = tile_start // width
        col = tile_start % width
        while filled < pending:
            run = min(width - col, pending - filled)
            y = ys[row]
            for q in range(run):
                zr[filled + q] = xs[col + q]
                zi[filled + q] = y
            filled += run
            row += 1
            col = 0
        for k in range(pending):
            alive[k] = 1.0
            count[k] = 0.0
            slot[k] = k
        size = pending

        done = 0
        steps = FIRST_PASS
        while pending > 0:
            steps = min(steps, max_iter - done)
            lanes = (pending + LANES - 1) // LANES * LANES
            for k in range(pending, lanes):
                alive[k] = 0.0  # padding lanes stay frozen
            _iterate(
                zr, zi, alive, count, cr, ci, bailout2, lanes, steps, done >= CYCLE_CHECKS_FROM
            )
            done += steps
            steps = min(2 * steps, LONGEST_PASS)

            # Record every pixel's current result (branch-free; unfinished ones are
            # overwritten by a later pass), then move the unfinished ones to the front.
            finished_all = done >= max_iter
            kept = 0
            for k in range(pending):
                n = count[k]
                place = slot[k]
                tile_counts[place] = np.int32(max_iter if (n < 0.0 or finished_all) else n)
                tile_r2[place] = zr[k] * zr[k] + zi[k] * zi[k]
                unfinished = 1 if alive[k] != 0.0 else 0
                zr[kept] = zr[k]
                zi[kept] = zi[k]
                count[kept] = n
                slot[kept] = place
                alive[kept] = 1.0
                kept += unfinished
            pending = 0 if finished_all else kept

        for k in range(size):
            flat_counts[tile_start + k] = tile_counts[k]
            flat_r2[tile_start + k] = tile_r2[k]
        if mirror:
            for k in range(size):
                flat_counts[full - 1 - tile_start - k] = tile_counts[k]
                flat_r2[full - 1 - tile_start - k] = tile_r2[k]


def symmetric_view(center: complex) -> bool:
    """Whether a view centred here can be mirrored (z -> -z maps the grid onto itself)."""
    return center == 0


def render_counts(
    c: complex,
    max_iter: int,
    bailout2: float,
    xs: np.ndarray,
    ys: np.ndarray,
    counts: np.ndarray,
    final_r2: np.ndarray,
    center: complex,
) -> None:
    """The kernel-module entry point used by the frame renderer."""
    escape_counts(
        xs, ys, c.real, c.imag, max_iter, bailout2, counts, final_r2, symmetric_view(center)
    )
