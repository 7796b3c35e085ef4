"""Deep Mandelbrot views by perturbation: one high-precision reference orbit per frame (shared
by the frames of a zoom), float64 deltas per pixel, rebasing, bilinear approximation, and
pixels iterated side by side in SIMD lanes.

- Reference orbit. Z_{m+1} = Z_m² + C at the view's centre C, in gmpy2 (MPC) with the
  mantissa the deepest frame needs (``fractal.spec.precision_bits``), stored as complex128.
- Perturbation. A pixel c = C + dc has the orbit Z_m + z_n with
  z_{n+1} = (2 Z_m + z_n) z_n + dc, all in float64.
- Scaled deltas. z and dc are kept as w = z / S and d = dc / S with S a power of two
  close to the view's half-height: w' = (2 Z + S w) w + d is the same arithmetic exactly
  (S is a power of two) but stays far from float64's smallest numbers, down to
  half-heights of 1e-300.
- Rebasing (Zhuoran). When |Z_m + z| < |z| (the pixel's orbit is closer to 0 than the
  delta), or the reference orbit ends, the delta becomes the full value and m restarts at
  0. No pixel strays from its reference, so there are no glitches to detect and fix.
- Bilinear approximation (BLA). While |z| is tiny next to |Z_m|, l iterations are
  z -> A z + B dc. Single steps (A = 2 Z_m, B = 1) are valid for |z| < EPSILON |2 Z_m|
  (and never near the bailout); steps of 2^k iterations are merged from two of 2^(k-1)
  (A = A_y A_x, B = A_y B_x + B_y, R = min(R_x, (R_y - |B_x| |dc|max) / |A_x|)) for every
  start m, not only multiples of 2^k, so a pixel can take a long step wherever it is.
  Only steps of at least 2^MIN_LEVEL iterations are stored: shorter ones cost more to look
  up than the single steps they replace.
- Lanes. Most of a deep pixel's time is its last few hundred iterations, where the delta
  is too large for any BLA step. Those single steps run for LANES pixels side by side in
  fixed passes with selects instead of branches (the compiler vectorises them; the
  reference values each lane needs are gathered first, as plain loads). Between passes,
  finished lanes take the next pixel and lanes that may take a BLA step take it, one lane
  at a time; a pass ends early once enough lanes wait for that.
- Distance estimation, optional: the derivative dz/dc follows the same steps
  (D' = 2 (Z + z) D + 1; through a BLA step D' = A D + B), scaled by S like z.
"""

from __future__ import annotations

import math

import gmpy2
import numpy as np
from numba import njit

from fractal.spec import View

from .base import EscapeBuffers, Keepalive, PixelGrid, Symmetry

# Relative size of the dropped term z² against 2 Z z at which a step counts as linear.
# Measured against direct high-precision counts (tests/test_deep.py): 2^-40 agrees on
# >= 99.9 % of pixels at both test locations.
EPSILON = 2.0**-40
# Iterations of the reference orbit between two keepalive calls (each ~1 us).
KEEPALIVE_EVERY = 4096
# The shortest BLA step taken, 2^MIN_LEVEL iterations.
MIN_LEVEL = 3
# Pixels iterated side by side, and the longest pass of single steps.
LANES = 64
PASS_STEPS = 32
# Every CHECK_EVERY steps a pass counts the lanes that wait (finished, or ready for a BLA
# step); it ends when WAITING_LANES do.
CHECK_EVERY = 4
WAITING_LANES = 8

# Rows of the lane state.
W_RE, W_IM, D_RE, D_IM, COUNT, DER_RE, DER_IM, COUNT_BEFORE = range(8)
FIELDS = 8
# Columns of a BLA step.
A_RE, A_IM, B_RE, B_IM, RADIUS = range(5)


def delta_scale(scale: float) -> float:
    """The power of two S the deltas are divided by: about the view's half-height."""
    return math.ldexp(1.0, math.frexp(scale)[1])


def reference_orbit(
    center_re: str,
    center_im: str,
    bits: int,
    max_iter: int,
    bailout2: float,
    keepalive: Keepalive | None = None,
) -> np.ndarray:
    """Z_0 = 0, Z_1 = C, ... at ``bits`` of precision, complex128, until the first Z outside
    the bailout (included) or Z_max_iter."""
    orbit = np.empty(max_iter + 1, np.complex128)
    context = gmpy2.context(precision=bits)
    with gmpy2.context(context):
        c = gmpy2.mpc(gmpy2.mpfr(center_re), gmpy2.mpfr(center_im))
        z = gmpy2.mpc(0)
        length = max_iter + 1
        for n in range(max_iter + 1):
            value = complex(z)
            orbit[n] = value
            if value.real * value.real + value.imag * value.imag > bailout2:
                length = n + 1
                break
            z = z * z + c
            if keepalive is not None and n % KEEPALIVE_EVERY == KEEPALIVE_EVERY - 1:
                keepalive()
    return orbit[:length].copy()


@njit(
    "float64[:, :, ::1](complex128[::1], float64, float64, float64, int64)",
    nogil=True,
    cache=True,
)
def bla_table(
    orbit: np.ndarray, epsilon: float, bailout: float, dc_max: float, min_level: int
) -> np.ndarray:
    """The BLA steps of a reference orbit: ``table[m, k]`` covers iterations m .. m + 2^(k +
    min_level) - 1 as A (re, im), B (re, im) and its radius R (in absolute units, like
    ``dc_max``; 0 where the step is never valid or would run past the orbit's end).

    Levels stop at the first on which no step is valid (a longer step is never valid
    where its halves are not), which bounds the table's size in practice.
    """
    size = orbit.size
    steps = size - 1  # single steps m -> m + 1 for m = 0 .. steps - 1
    current = np.zeros((max(steps, 1), 5))
    for m in range(steps):
        z = orbit[m]
        modulus = math.sqrt(z.real * z.real + z.imag * z.imag)
        current[m, A_RE] = 2.0 * z.real
        current[m, A_IM] = 2.0 * z.imag
        current[m, B_RE] = 1.0
        current[m, RADIUS] = min(epsilon * 2.0 * modulus, max(0.0, bailout - modulus))
    kept = []
    level = 0
    valid = steps  # starts m < valid have a step on this level
    while True:
        if level >= min_level:
            kept.append(current)
        half = 1 << level
        valid -= half
        if valid <= 0:
            break
        merged = np.zeros_like(current)
        any_valid = False
        for m in range(valid):
            ax_r, ax_i = current[m, A_RE], current[m, A_IM]
            bx_r, bx_i = current[m, B_RE], current[m, B_IM]
            ay_r, ay_i = current[m + half, A_RE], current[m + half, A_IM]
            by_r, by_i = current[m + half, B_RE], current[m + half, B_IM]
            merged[m, A_RE] = ay_r * ax_r - ay_i * ax_i
            merged[m, A_IM] = ay_r * ax_i + ay_i * ax_r
            merged[m, B_RE] = ay_r * bx_r - ay_i * bx_i + by_r
            merged[m, B_IM] = ay_r * bx_i + ay_i * bx_r + by_i
            size_ax = math.sqrt(ax_r * ax_r + ax_i * ax_i)
            size_bx = math.sqrt(bx_r * bx_r + bx_i * bx_i)
            radius = (
                (current[m + half, RADIUS] - size_bx * dc_max) / size_ax if size_ax > 0.0 else 0.0
            )
            radius = min(current[m, RADIUS], radius)
            if radius > 0.0:  # also NaN -> 0
                merged[m, RADIUS] = radius
                any_valid = True
        level += 1
        if not any_valid and level > min_level:
            break
        current = merged
    table = np.zeros((size, max(len(kept), 1), 5))
    for k in range(len(kept)):
        table[:steps, k, :] = kept[k][:steps]
    return table


@njit(inline="always")
def _gather(
    m_of: np.ndarray,
    orbit: np.ndarray,
    ready_r2: np.ndarray,
    z_of: np.ndarray,
    ready_of: np.ndarray,
) -> None:
    """Each lane's reference value and BLA threshold, as plain loads (a separate loop, so
    the step loop has none and vectorises)."""
    for k in range(LANES):
        m = np.uint64(m_of[k])  # unsigned: no negative-index wraparound to compute
        z_of[k] = orbit[m]
        ready_of[k] = ready_r2[m]


@njit(inline="always")
def _enough_wait(state: np.ndarray, step: int, max_iter: int) -> bool:
    """At every CHECK_EVERY steps: whether WAITING_LANES lanes made no step since the last
    check (then the pass ends). Idle lanes (no pixel left) count max_iter + 1 and never
    wait."""
    if step % CHECK_EVERY != 0:
        return False
    waiting = 0
    if step > 0:
        for k in range(LANES):
            count = state[COUNT, k]
            waiting += 1 if (count == state[COUNT_BEFORE, k]) & (count <= max_iter) else 0
    for k in range(LANES):
        state[COUNT_BEFORE, k] = state[COUNT, k]
    return waiting >= WAITING_LANES


_PASS_SIGNATURE = (
    "void(float64[:, ::1], int64[::1], complex128[::1], float64[::1], complex128[::1],"
    " float64[::1], float64, int64, int64, float64, int64)"
)


@njit(_PASS_SIGNATURE, nogil=True, cache=True, fastmath={"contract"})
def _single_steps(
    state: np.ndarray,
    m_of: np.ndarray,
    orbit: np.ndarray,
    ready_r2: np.ndarray,
    z_of: np.ndarray,
    ready_of: np.ndarray,
    scale: float,
    last: int,
    max_iter: int,
    bailout2: float,
    min_step: int,
) -> None:
    """A pass of up to PASS_STEPS single steps of every lane."""
    inv_scale = 1.0 / scale
    for step in range(PASS_STEPS):
        if _enough_wait(state, step, max_iter):
            return
        _gather(m_of, orbit, ready_r2, z_of, ready_of)
        for k in range(LANES):
            m = m_of[k]
            n = state[COUNT, k]
            w_r = state[W_RE, k]
            w_i = state[W_IM, k]
            reference = z_of[k]
            z_r = scale * w_r
            z_i = scale * w_i
            f_r = reference.real + z_r
            f_i = reference.imag + z_i
            r2 = f_r * f_r + f_i * f_i
            rebase = (r2 < z_r * z_r + z_i * z_i) | (m == last)
            ready = (w_r * w_r + w_i * w_i < ready_of[k]) & (n + min_step <= max_iter) & ~rebase
            go = (n < max_iter) & (r2 <= bailout2) & ~ready
            v_r = f_r * inv_scale if rebase else w_r
            v_i = f_i * inv_scale if rebase else w_i
            t_r = f_r + (0.0 if rebase else reference.real)
            t_i = f_i + (0.0 if rebase else reference.imag)
            new_r = t_r * v_r - t_i * v_i + state[D_RE, k]
            new_i = t_r * v_i + t_i * v_r + state[D_IM, k]
            state[W_RE, k] = new_r if go else w_r
            state[W_IM, k] = new_i if go else w_i
            m_of[k] = (1 if rebase else m + 1) if go else m
            state[COUNT, k] = n + 1.0 if go else n


@njit(_PASS_SIGNATURE, nogil=True, cache=True, fastmath={"contract"})
def _single_steps_with_derivative(
    state: np.ndarray,
    m_of: np.ndarray,
    orbit: np.ndarray,
    ready_r2: np.ndarray,
    z_of: np.ndarray,
    ready_of: np.ndarray,
    scale: float,
    last: int,
    max_iter: int,
    bailout2: float,
    min_step: int,
) -> None:
    """``_single_steps`` that also carries D = S dz/dc: D' = 2 (Z + z) D + S.

    The step is written out again rather than shared through an inlined helper or a flag:
    either way LLVM no longer vectorised the loop (measured 2.4x slower).
    """
    inv_scale = 1.0 / scale
    for step in range(PASS_STEPS):
        if _enough_wait(state, step, max_iter):
            return
        _gather(m_of, orbit, ready_r2, z_of, ready_of)
        for k in range(LANES):
            m = m_of[k]
            n = state[COUNT, k]
            w_r = state[W_RE, k]
            w_i = state[W_IM, k]
            der_r = state[DER_RE, k]  # every load before any store: else no vectorising
            der_i = state[DER_IM, k]
            reference = z_of[k]
            z_r = scale * w_r
            z_i = scale * w_i
            f_r = reference.real + z_r
            f_i = reference.imag + z_i
            r2 = f_r * f_r + f_i * f_i
            rebase = (r2 < z_r * z_r + z_i * z_i) | (m == last)
            ready = (w_r * w_r + w_i * w_i < ready_of[k]) & (n + min_step <= max_iter) & ~rebase
            go = (n < max_iter) & (r2 <= bailout2) & ~ready
            v_r = f_r * inv_scale if rebase else w_r
            v_i = f_i * inv_scale if rebase else w_i
            t_r = f_r + (0.0 if rebase else reference.real)
            t_i = f_i + (0.0 if rebase else reference.imag)
            new_r = t_r * v_r - t_i * v_i + state[D_RE, k]
            new_i = t_r * v_i + t_i * v_r + state[D_IM, k]
            state[W_RE, k] = new_r if go else w_r
            state[W_IM, k] = new_i if go else w_i
            m_of[k] = (1 if rebase else m + 1) if go else m
            state[COUNT, k] = n + 1.0 if go else n
            new_r = 2.0 * (f_r * der_r - f_i * der_i) + scale
            new_i = 2.0 * (f_r * der_i + f_i * der_r)
            state[DER_RE, k] = new_r if go else der_r
            state[DER_IM, k] = new_i if go else der_i


@njit(
    "void(complex128[::1], float64[:, :, ::1], float64[::1], float64[::1], float64[::1],"
    " float64, float64, float64, float64, float64, int64, float64,"
    " int32[:, ::1], float64[:, ::1], boolean, float64[:, ::1], float64)",
    nogil=True,
    cache=True,
)
def perturbed_counts(
    orbit: np.ndarray,
    table: np.ndarray,
    ready_r2: np.ndarray,
    us: np.ndarray,
    vs: np.ndarray,
    cos: float,
    sin: float,
    shift_r: float,
    shift_i: float,
    scale: float,
    max_iter: int,
    bailout2: float,
    counts: np.ndarray,
    final_r2: np.ndarray,
    want_r2: bool,
    distance: np.ndarray,
    pixel: float,
) -> None:
    """Counts of the pixels C + shift + turn (us[i] + i vs[j]) into ``counts[j, i]``.

    ``us``, ``vs`` and the shift (the view's centre minus the reference) are already
    divided by ``scale`` (S); ``pixel`` is a pixel's size divided by S. ``table`` is
    ``bla_table``'s with radii divided by S, ``ready_r2[m]`` the square of its shortest
    step's radius at m.
    """
    rows, width = counts.shape
    total = rows * width
    last = orbit.size - 1
    levels = table.shape[1]
    want_distance = distance.shape[1] > 0
    min_step = 1 << MIN_LEVEL
    state = np.zeros((FIELDS, LANES))
    m_of = np.zeros(LANES, np.int64)
    z_of = np.zeros(LANES, np.complex128)
    ready_of = np.zeros(LANES)
    pixel_of = np.full(LANES, -1, np.int64)
    idle = max_iter + 1.0
    state[COUNT, :] = idle  # idle lanes never step
    following = 0  # the next pixel to start
    running = 0
    while True:
        for k in range(LANES):
            # Between passes: a finished lane records its pixel and starts the next one
            # (perhaps finishing it in BLA steps); a lane ready for BLA steps takes them.
            while True:
                index = pixel_of[k]
                if index < 0:
                    if following >= total:
                        break
                    index = following
                    following += 1
                    pixel_of[k] = index
                    running += 1
                    u = us[index % width]
                    v = vs[index // width]
                    d_r = u * cos - v * sin + shift_r
                    d_i = u * sin + v * cos + shift_i
                    state[D_RE, k] = d_r
                    state[D_IM, k] = d_i
                    # z_1 = z_0² + dc = dc (Z_0 = z_0 = 0); D_1 = S.
                    state[W_RE, k] = d_r
                    state[W_IM, k] = d_i
                    state[DER_RE, k] = scale
                    state[DER_IM, k] = 0.0
                    m_of[k] = 1
                    state[COUNT, k] = 1.0
                w_r = state[W_RE, k]
                w_i = state[W_IM, k]
                d_r = state[D_RE, k]
                d_i = state[D_IM, k]
                der_r = state[DER_RE, k]
                der_i = state[DER_IM, k]
                m = m_of[k]
                n = np.int64(state[COUNT, k])
                finished = False
                r2 = 0.0
                while True:
                    z_r = scale * w_r
                    z_i = scale * w_i
                    reference = orbit[m]
                    f_r = reference.real + z_r
                    f_i = reference.imag + z_i
                    r2 = f_r * f_r + f_i * f_i
                    if n >= max_iter or r2 > bailout2:
                        finished = True
                        break
                    size2 = w_r * w_r + w_i * w_i
                    if (
                        r2 < z_r * z_r + z_i * z_i  # to rebase: the single steps do it
                        or m == last
                        or size2 >= ready_r2[m]
                        or n + min_step > max_iter
                    ):
                        break
                    # The longest valid step from m (radii shrink with the length).
                    steps = table[m]
                    level = 1
                    while level < levels and n + (min_step << level) <= max_iter:
                        radius = steps[level, RADIUS]
                        if size2 >= radius * radius:
                            break
                        level += 1
                    level -= 1
                    a_r = steps[level, A_RE]
                    a_i = steps[level, A_IM]
                    b_r = steps[level, B_RE]
                    b_i = steps[level, B_IM]
                    new_r = a_r * w_r - a_i * w_i + b_r * d_r - b_i * d_i
                    w_i = a_r * w_i + a_i * w_r + b_r * d_i + b_i * d_r
                    w_r = new_r
                    if want_distance:
                        new_r = a_r * der_r - a_i * der_i + b_r * scale
                        der_i = a_r * der_i + a_i * der_r + b_i * scale
                        der_r = new_r
                    n += min_step << level
                    m += min_step << level
                if not finished:
                    state[W_RE, k] = w_r
                    state[W_IM, k] = w_i
                    state[DER_RE, k] = der_r
                    state[DER_IM, k] = der_i
                    state[COUNT, k] = n
                    m_of[k] = m
                    break
                row = index // width
                column = index % width
                counts[row, column] = n
                if want_r2:
                    final_r2[row, column] = r2
                if want_distance:
                    size = math.sqrt(der_r * der_r + der_i * der_i)
                    if n < max_iter and size > 0.0:
                        modulus = math.sqrt(r2)
                        distance[row, column] = modulus * math.log(modulus) / (size * pixel)
                    else:
                        distance[row, column] = 0.0
                pixel_of[k] = -1
                running -= 1
                state[COUNT, k] = idle
                state[W_RE, k] = 0.0
                state[W_IM, k] = 0.0
                m_of[k] = 0
        if running == 0:
            return
        if want_distance:
            _single_steps_with_derivative(
                state,
                m_of,
                orbit,
                ready_r2,
                z_of,
                ready_of,
                scale,
                last,
                max_iter,
                bailout2,
                min_step,
            )
        else:
            _single_steps(
                state,
                m_of,
                orbit,
                ready_r2,
                z_of,
                ready_of,
                scale,
                last,
                max_iter,
                bailout2,
                min_step,
            )


class PerturbationKernel:
    """The Mandelbrot set at any depth down to a half-height of 1e-300.

    One instance per frame renderer: it keeps the reference orbit of the last centre, so
    the frames of a zoom (one centre) compute it once. ``prepare`` (once per frame) builds
    the orbit if needed and the frame's BLA table; ``escape_counts`` may then run on bands
    of rows from several threads.
    """

    def __init__(self, precision_bits: int = 0) -> None:
        self.precision_bits = precision_bits
        self._orbit_key: tuple[str, str, int, float] | None = None
        self._orbit_bits = 0
        self._orbit = np.zeros(1, np.complex128)
        self._table = np.zeros((1, 1, 5))
        self._ready_r2 = np.zeros(1)
        self._scale = 1.0

    def symmetry(self, c: complex, grid: PixelGrid) -> Symmetry:
        return Symmetry.NONE  # BLA steps differ a little between a pixel and its mirror

    def prepare(
        self,
        c: complex,
        grid: PixelGrid,
        max_iter: int,
        bailout2: float,
        keepalive: Keepalive | None = None,
    ) -> None:
        view = grid.view
        bits = max(self.precision_bits, _bits_for(view, grid.height))
        key = (str(view.center_re), str(view.center_im), max_iter, bailout2)
        if self._orbit_key != key or self._orbit_bits < bits:
            self._orbit = reference_orbit(key[0], key[1], bits, max_iter, bailout2, keepalive)
            self._orbit_key = key
            self._orbit_bits = bits
        self._scale = delta_scale(view.scale)
        # The farthest pixel from the reference (the view's half-diagonal).
        half_width = abs(float(grid.us[0])) if grid.us.size else 0.0
        dc_max = math.hypot(half_width, view.scale)
        table = bla_table(self._orbit, EPSILON, math.sqrt(bailout2), dc_max, MIN_LEVEL)
        # The radii come in absolute units; the pixels compare them with scaled deltas.
        table[:, :, RADIUS] /= self._scale
        self._table = table
        with np.errstate(over="ignore"):  # an infinite radius² is right: any delta is small
            self._ready_r2 = np.ascontiguousarray(table[:, 0, RADIUS] ** 2)

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None:
        view = grid.view
        scale = self._scale
        inv = 1.0 / scale
        pixel = 2.0 * grid.pixel  # a whole pixel's size
        perturbed_counts(
            self._orbit,
            self._table,
            self._ready_r2,
            np.ascontiguousarray(grid.us * inv),
            np.ascontiguousarray(grid.vs * inv),
            math.cos(view.rotation),
            math.sin(view.rotation),
            0.0,
            0.0,
            scale,
            max_iter,
            bailout2,
            out.counts,
            out.final_r2,
            out.want_r2,
            out.distance,
            pixel * inv,
        )


def _bits_for(view: View, height: int) -> int:
    from fractal.spec import precision_bits

    return precision_bits(view, height)
