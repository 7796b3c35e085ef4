"""Deep Mandelbrot views by perturbation: one high-precision reference orbit per frame (shared
by the frames of a zoom), float64 deltas per pixel, rebasing, bilinear approximation.

- Reference orbit. Z_{m+1} = Z_m² + C at the view's centre C, in gmpy2 (MPC) with the
  mantissa the deepest frame needs (``fractal.spec.precision_bits``), stored as float64.
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
  (and never near the bailout); pairs are merged level by level into steps of 2, 4, 8...
  iterations (A = A_y A_x, B = A_y B_x + B_y, R = min(R_x, (R_y - |B_x| |dc|max) / |A_x|)).
  A pixel takes the longest valid step starting at its m, so the first thousands of
  iterations of a deep view cost a few dozen steps.
- Distance estimation, optional: the derivative dz/dc follows the same steps
  (D' = 2 (Z + z) D + 1; through a BLA step D' = A D + B), scaled by S like z.
"""

from __future__ import annotations

import math
import threading

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


@njit("float64[::1](float64[::1], float64[::1], float64, float64, float64)", nogil=True, cache=True)
def bla_table(
    zr: np.ndarray, zi: np.ndarray, epsilon: float, bailout: float, dc_max: float
) -> np.ndarray:
    """The BLA steps of a reference orbit, level by level, flattened.

    Level k has one step per start m = j 2^k covering iterations m .. m + 2^k - 1 (those
    whose end stays inside the orbit); each step is five numbers: A (re, im), B (re, im)
    and its radius R, all in the units of the deltas (R and ``dc_max`` scaled like them).
    Level k starts at ``offsets[k]``: the caller recomputes them with ``bla_offsets``.
    """
    steps = zr.size - 1  # single steps m -> m + 1 for m = 0 .. steps - 1
    total = 0
    count = steps
    while count >= 1:
        total += count
        count //= 2
    table = np.zeros(5 * max(total, 1))
    # Level 0.
    for m in range(steps):
        a_r = 2.0 * zr[m]
        a_i = 2.0 * zi[m]
        size = math.sqrt(zr[m] * zr[m] + zi[m] * zi[m])
        radius = min(epsilon * 2.0 * size, max(0.0, bailout - size))
        base = 5 * m
        table[base] = a_r
        table[base + 1] = a_i
        table[base + 2] = 1.0
        table[base + 3] = 0.0
        table[base + 4] = radius
    # Merge pairs: level k + 1 step j = level k step 2j + 1 after level k step 2j.
    previous = 0
    count = steps
    start = steps
    while count >= 2:
        merged = count // 2
        for j in range(merged):
            x = 5 * (previous + 2 * j)
            y = x + 5
            ax_r, ax_i, bx_r, bx_i = table[x], table[x + 1], table[x + 2], table[x + 3]
            ay_r, ay_i, by_r, by_i = table[y], table[y + 1], table[y + 2], table[y + 3]
            rx, ry = table[x + 4], table[y + 4]
            out = 5 * (start + j)
            table[out] = ay_r * ax_r - ay_i * ax_i
            table[out + 1] = ay_r * ax_i + ay_i * ax_r
            table[out + 2] = ay_r * bx_r - ay_i * bx_i + by_r
            table[out + 3] = ay_r * bx_i + ay_i * bx_r + by_i
            size_ax = math.sqrt(ax_r * ax_r + ax_i * ax_i)
            size_bx = math.sqrt(bx_r * bx_r + bx_i * bx_i)
            radius = (ry - size_bx * dc_max) / size_ax if size_ax > 0.0 else 0.0
            radius = min(rx, radius)
            table[out + 4] = radius if radius > 0.0 else 0.0  # also NaN -> 0
        previous = start
        start += merged
        count = merged
    return table


def bla_offsets(steps: int) -> np.ndarray:
    """Where each level of ``bla_table`` starts (in steps), and its length as the last."""
    offsets = []
    start, count = 0, steps
    while count >= 1:
        offsets.append(start)
        start += count
        count //= 2
    offsets.append(start)
    return np.array(offsets, np.int64)


@njit(
    "void(float64[::1], float64[::1], float64[::1], int64[::1], float64[::1], float64[::1],"
    " float64, float64, float64, float64, float64, float64, int64, float64,"
    " int32[:, ::1], float64[:, ::1], boolean, float64[:, ::1], float64)",
    nogil=True,
    cache=True,
)
def perturbed_counts(
    zr: np.ndarray,
    zi: np.ndarray,
    table: np.ndarray,
    offsets: np.ndarray,
    us: np.ndarray,
    vs: np.ndarray,
    cos: float,
    sin: float,
    shift_r: float,
    shift_i: float,
    scale: float,
    inv_scale: float,
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
    divided by ``scale`` (S); ``pixel`` is a pixel's size divided by S.
    """
    rows, width = counts.shape
    last = zr.size - 1
    levels = offsets.size - 1
    want_distance = distance.shape[1] > 0
    for row in range(rows):
        v = vs[row]
        for column in range(width):
            u = us[column]
            d_r = u * cos - v * sin + shift_r
            d_i = u * sin + v * cos + shift_i
            w_r = 0.0
            w_i = 0.0
            der_r = 0.0  # dz/dc times S
            der_i = 0.0
            m = 0
            n = 0
            r2 = 0.0
            while n < max_iter:
                z_r = scale * w_r  # the delta, unscaled
                z_i = scale * w_i
                f_r = zr[m] + z_r  # the pixel's own z
                f_i = zi[m] + z_i
                r2 = f_r * f_r + f_i * f_i
                if r2 > bailout2:
                    break
                if r2 < z_r * z_r + z_i * z_i or m == last:
                    # Rebase: the pixel's z becomes the delta against Z_0 = 0.
                    w_r = f_r * inv_scale
                    w_i = f_i * inv_scale
                    z_r = f_r
                    z_i = f_i
                    m = 0
                # The longest valid BLA step starting at m.
                size2 = w_r * w_r + w_i * w_i
                best = -1
                level = 0
                while level < levels:
                    if m & ((1 << level) - 1):
                        break
                    index = offsets[level] + (m >> level)
                    if index >= offsets[level + 1] or n + (1 << level) > max_iter:
                        break
                    radius = table[5 * index + 4]
                    if size2 >= radius * radius:
                        break
                    best = index
                    level += 1
                if best >= 0:
                    a_r = table[5 * best]
                    a_i = table[5 * best + 1]
                    b_r = table[5 * best + 2]
                    b_i = table[5 * best + 3]
                    new_r = a_r * w_r - a_i * w_i + b_r * d_r - b_i * d_i
                    w_i = a_r * w_i + a_i * w_r + b_r * d_i + b_i * d_r
                    w_r = new_r
                    if want_distance:
                        new_r = a_r * der_r - a_i * der_i + b_r * scale
                        der_i = a_r * der_i + a_i * der_r + b_i * scale
                        der_r = new_r
                    skipped = 1 << (level - 1)
                    n += skipped
                    m += skipped
                    continue
                if want_distance:
                    new_r = 2.0 * (f_r * der_r - f_i * der_i) + scale
                    der_i = 2.0 * (f_r * der_i + f_i * der_r)
                    der_r = new_r
                t_r = 2.0 * zr[m] + z_r
                t_i = 2.0 * zi[m] + z_i
                new_r = t_r * w_r - t_i * w_i + d_r
                w_i = t_r * w_i + t_i * w_r + d_i
                w_r = new_r
                m += 1
                n += 1
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
        self._zr = np.zeros(1)
        self._zi = np.zeros(1)
        self._table = np.zeros(5)
        self._offsets = np.zeros(1, np.int64)
        self._scale = 1.0
        self._shift = 0j
        self._lock = threading.Lock()

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
            orbit = reference_orbit(key[0], key[1], bits, max_iter, bailout2, keepalive)
            self._zr = np.ascontiguousarray(orbit.real)
            self._zi = np.ascontiguousarray(orbit.imag)
            self._orbit_key = key
            self._orbit_bits = bits
        self._scale = delta_scale(view.scale)
        # The farthest pixel from the reference (the view's half-diagonal), scaled.
        half_width = abs(float(grid.us[0])) if grid.us.size else 0.0
        dc_max = math.hypot(half_width, view.scale)
        self._table = bla_table(self._zr, self._zi, EPSILON, math.sqrt(bailout2), dc_max)
        # The radii come in absolute units; the pixels compare them with scaled deltas.
        self._table[4::5] /= self._scale
        self._offsets = bla_offsets(self._zr.size - 1)

    def escape_counts(
        self, c: complex, grid: PixelGrid, max_iter: int, bailout2: float, out: EscapeBuffers
    ) -> None:
        view = grid.view
        scale = self._scale
        inv = 1.0 / scale
        pixel = 2.0 * grid.pixel  # a whole pixel's size
        perturbed_counts(
            self._zr,
            self._zi,
            self._table,
            self._offsets,
            np.ascontiguousarray(grid.us * inv),
            np.ascontiguousarray(grid.vs * inv),
            math.cos(view.rotation),
            math.sin(view.rotation),
            0.0,
            0.0,
            scale,
            inv,
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
