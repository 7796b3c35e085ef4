"""The shared float64 escape-time loop of the burning ship, tricorn and multibrot families.

Each family has its module (``burning_ship.py``, ``tricorn.py``, ``multibrot.py``) with its
kernel class and symmetry; they share this driver, which runs one family's step over
blocks of ``LANES`` pixels in fixed-length, branch-free passes that LLVM vectorises (an
escaped lane is frozen by a select). The family is chosen once per pass, outside the
vectorised loops. A lane whose z comes back bit for bit to its value at the start of a
pass is on a periodic float orbit that never escapes: it is interior at once, exactly as
if all ``max_iter`` iterations had been run.

Two forms of each family: the parameter plane (z0 = 0, c = the pixel) and the Julia form
(z0 = the pixel, c fixed for the frame).
"""

from __future__ import annotations

import numpy as np
from numba import njit

LANES = 32
FIRST_PASS = 8
LONGEST_PASS = 64
CYCLE_CHECKS_FROM = 16

BURNING_SHIP = 0  # z -> (|Re z| + i |Im z|)² + c
TRICORN = 1  # z -> conj(z)² + c
MULTIBROT = 2  # z -> z^power + c

# Rows of the lane state.
ZR, ZI, PR, PI, ALIVE, COUNT, START_R, START_I, WR, WI = range(10)
FIELDS = 10


@njit(inline="always")
def _finish_step(
    lane: np.ndarray, k: int, new_r: float, new_i: float, go: bool, check: bool
) -> None:
    """Commit one step of lane k: frozen if it escaped, -1 (interior) if it cycled."""
    cycle = check & go & (new_r == lane[START_R, k]) & (new_i == lane[START_I, k])
    lane[ZR, k] = new_r if go else lane[ZR, k]
    lane[ZI, k] = new_i if go else lane[ZI, k]
    n = lane[COUNT, k]
    lane[COUNT, k] = -1.0 if cycle else (n + 1.0 if go else n)
    lane[ALIVE, k] = 1.0 if (go & ~cycle) else 0.0


@njit(
    "void(float64[:, ::1], int64, int64, float64, int64, boolean)",
    nogil=True,
    cache=True,
)
def family_pass(
    lane: np.ndarray, family: int, power: int, bailout2: float, steps: int, check: bool
) -> None:
    """``steps`` iterations of one block of lanes, in place."""
    for k in range(LANES):
        lane[START_R, k] = lane[ZR, k]
        lane[START_I, k] = lane[ZI, k]
    if family == BURNING_SHIP:
        for _ in range(steps):
            for k in range(LANES):
                x = lane[ZR, k]
                y = lane[ZI, k]
                x2 = x * x
                y2 = y * y
                go = (lane[ALIVE, k] != 0.0) & (x2 + y2 <= bailout2)
                _finish_step(
                    lane, k, x2 - y2 + lane[PR, k], 2.0 * abs(x * y) + lane[PI, k], go, check
                )
    elif family == TRICORN:
        for _ in range(steps):
            for k in range(LANES):
                x = lane[ZR, k]
                y = lane[ZI, k]
                x2 = x * x
                y2 = y * y
                go = (lane[ALIVE, k] != 0.0) & (x2 + y2 <= bailout2)
                _finish_step(lane, k, x2 - y2 + lane[PR, k], -2.0 * x * y + lane[PI, k], go, check)
    else:
        for _ in range(steps):
            for k in range(LANES):
                lane[WR, k] = lane[ZR, k]
                lane[WI, k] = lane[ZI, k]
            for _ in range(power - 1):
                for k in range(LANES):
                    a = lane[WR, k]
                    b = lane[WI, k]
                    lane[WR, k] = a * lane[ZR, k] - b * lane[ZI, k]
                    lane[WI, k] = a * lane[ZI, k] + b * lane[ZR, k]
            for k in range(LANES):
                x = lane[ZR, k]
                y = lane[ZI, k]
                go = (lane[ALIVE, k] != 0.0) & (x * x + y * y <= bailout2)
                _finish_step(
                    lane, k, lane[WR, k] + lane[PR, k], lane[WI, k] + lane[PI, k], go, check
                )


@njit(
    "void(float64[:, :], float64[:, :], int64, int64, boolean, float64, float64, int64,"
    " float64, int32[:, ::1], float64[:, ::1], boolean)",
    nogil=True,
    cache=True,
)
def family_counts(
    re: np.ndarray,
    im: np.ndarray,
    family: int,
    power: int,
    julia: bool,
    cr: float,
    ci: float,
    max_iter: int,
    bailout2: float,
    counts: np.ndarray,
    final_r2: np.ndarray,
    want_r2: bool,
) -> None:
    """Escape counts of every pixel (re[j, i], im[j, i]: any strides) into ``counts``.

    The count is the number of iterations done while |z|² <= ``bailout2``, at most
    ``max_iter``; ``final_r2`` gets |z|² after escape when ``want_r2``.
    """
    rows, width = counts.shape
    lane = np.zeros((FIELDS, LANES))
    for row in range(rows):
        for column in range(0, width, LANES):
            used = min(LANES, width - column)
            for k in range(LANES):
                x = re[row, column + k] if k < used else 0.0
                y = im[row, column + k] if k < used else 0.0
                lane[ZR, k] = x if julia else 0.0
                lane[ZI, k] = y if julia else 0.0
                lane[PR, k] = cr if julia else x
                lane[PI, k] = ci if julia else y
                lane[ALIVE, k] = 1.0 if k < used else 0.0
                lane[COUNT, k] = 0.0
            done = 0
            steps = FIRST_PASS
            while done < max_iter:
                steps = min(steps, max_iter - done)
                family_pass(lane, family, power, bailout2, steps, done >= CYCLE_CHECKS_FROM)
                done += steps
                steps = min(2 * steps, LONGEST_PASS)
                alive = 0.0
                for k in range(LANES):
                    alive += lane[ALIVE, k]
                if alive == 0.0:
                    break
            for k in range(used):
                n = lane[COUNT, k]
                counts[row, column + k] = np.int32(max_iter if n < 0.0 else n)
                if want_r2:
                    x = lane[ZR, k]
                    y = lane[ZI, k]
                    final_r2[row, column + k] = x * x + y * y
