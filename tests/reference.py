"""Plain Python/NumPy reference implementations the optimised engine is checked against."""

from __future__ import annotations

import numpy as np


def escape_counts(
    width: int,
    height: int,
    center: complex,
    scale: float,
    c: complex,
    max_iter: int,
    bailout2: float,
) -> np.ndarray:
    """The textbook escape-time loop, one pixel at a time, pixel centres at (i + 0.5) / w."""
    counts = np.zeros((height, width), np.int32)
    pixel = scale / height
    for j in range(height):
        y = center.imag + (height - 1.0 - 2.0 * j) * pixel
        for i in range(width):
            x = center.real + (2.0 * i + 1.0 - width) * pixel
            zr, zi, n = x, y, 0
            while n < max_iter:
                x2, y2 = zr * zr, zi * zi
                if x2 + y2 > bailout2:
                    break
                zi = 2.0 * zr * zi + c.imag
                zr = x2 - y2 + c.real
                n += 1
            counts[j, i] = n
    return counts


def mandelbrot_counts(
    width: int, height: int, center: complex, scale: float, max_iter: int, bailout2: float
) -> np.ndarray:
    """The textbook Mandelbrot loop: z0 = 0, c = the pixel centre, count while |z|² <= b²."""
    counts = np.zeros((height, width), np.int32)
    pixel = scale / height
    for j in range(height):
        ci = center.imag + (height - 1.0 - 2.0 * j) * pixel
        for i in range(width):
            cr = center.real + (2.0 * i + 1.0 - width) * pixel
            zr, zi, n = 0.0, 0.0, 0
            while n < max_iter:
                x2, y2 = zr * zr, zi * zi
                if x2 + y2 > bailout2:
                    break
                zi = 2.0 * zr * zi + ci
                zr = x2 - y2 + cr
                n += 1
            counts[j, i] = n
    return counts


def histogram_blue(counts: np.ndarray, max_iter: int) -> np.ndarray:
    """The original service's colouring: histogram equalisation, value = 255 ** cdf,
    colour (value, value, 255), interior (count == max_iter) black."""
    escaped = counts[counts < max_iter]
    hist = np.bincount(escaped.ravel(), minlength=max_iter)[:max_iter]
    cdf = np.cumsum(hist) / max(escaped.size, 1)
    rgb = np.zeros((*counts.shape, 3), np.uint8)
    outside = counts < max_iter
    values = (255.0 ** cdf[counts[outside]]).astype(np.uint8)
    rgb[outside, 0] = values
    rgb[outside, 1] = values
    rgb[outside, 2] = 255
    return rgb


def family_counts(
    kind: str,
    width: int,
    height: int,
    center: complex,
    scale: float,
    max_iter: int,
    bailout2: float,
    c: complex = 0j,
    power: int = 2,
) -> np.ndarray:
    """The textbook loops of the other escape-time families, one pixel at a time.

    Parameter plane: z0 = 0, c = the pixel; ``*_julia``: z0 = the pixel, c given.
    """
    counts = np.zeros((height, width), np.int32)
    pixel = scale / height
    julia = kind.endswith("_julia")
    for j in range(height):
        y = center.imag + (height - 1.0 - 2.0 * j) * pixel
        for i in range(width):
            x = center.real + (2.0 * i + 1.0 - width) * pixel
            zr, zi = (x, y) if julia else (0.0, 0.0)
            pr, pi = (c.real, c.imag) if julia else (x, y)
            n = 0
            while n < max_iter:
                if zr * zr + zi * zi > bailout2:
                    break
                if kind.startswith("burning_ship"):
                    zr, zi = zr * zr - zi * zi + pr, 2.0 * abs(zr * zi) + pi
                elif kind.startswith("tricorn"):
                    zr, zi = zr * zr - zi * zi + pr, -2.0 * zr * zi + pi
                else:  # multibrot: z**power by repeated multiplication
                    wr, wi = zr, zi
                    for _ in range(power - 1):
                        wr, wi = wr * zr - wi * zi, wr * zi + wi * zr
                    zr, zi = wr + pr, wi + pi
                n += 1
            counts[j, i] = n
    return counts


def newton_counts(
    width: int, height: int, center: complex, scale: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray]:
    """Newton's method for z**3 - 1 from every pixel: steps until within 1e-6 of a root,
    and which root (1: 1, 2: upper, 3: lower; 0: none)."""
    roots = [(1.0, 0.0), (-0.5, 0.8660254037844386), (-0.5, -0.8660254037844386)]
    counts = np.zeros((height, width), np.int32)
    found = np.zeros((height, width), np.uint8)
    pixel = scale / height
    for j in range(height):
        for i in range(width):
            x = center.real + (2.0 * i + 1.0 - width) * pixel
            y = center.imag + (height - 1.0 - 2.0 * j) * pixel
            n = 0
            while True:
                hit = [
                    k + 1
                    for k, (rr, ri) in enumerate(roots)
                    if (x - rr) * (x - rr) + (y - ri) * (y - ri) < 1e-12
                ]
                if hit or n >= max_iter:
                    found[j, i] = hit[-1] if hit else 0
                    break
                x2, y2 = x * x - y * y, 2.0 * x * y
                num_r, num_i = x2 * x - y2 * y - 1.0, x2 * y + y2 * x
                den_r, den_i = 3.0 * x2, 3.0 * y2
                norm = den_r * den_r + den_i * den_i
                if norm == 0.0:
                    n = max_iter
                    break
                x, y = (
                    x - (num_r * den_r + num_i * den_i) / norm,
                    y - (num_i * den_r - num_r * den_i) / norm,
                )
                n += 1
            counts[j, i] = n
    return counts, found


def direct_escape(
    center_re: str, center_im: str, offset: complex, max_iter: int, bailout2: float
) -> int:
    """The Mandelbrot escape count of centre + offset, computed directly in mpmath at a
    precision that resolves the offset (no perturbation, no approximation)."""
    import mpmath

    digits = max(30, int(-mpmath.log10(abs(offset) + 1e-300)) + 30) if offset else 60
    with mpmath.workdps(digits):
        c = mpmath.mpc(mpmath.mpf(center_re) + offset.real, mpmath.mpf(center_im) + offset.imag)
        z = mpmath.mpc(0)
        for n in range(max_iter):
            if z.real * z.real + z.imag * z.imag > bailout2:
                return n
            z = z * z + c
    return max_iter


def direct_distance(
    center_re: str,
    center_im: str,
    offset: complex,
    max_iter: int,
    bailout2: float,
    pixel_size: float,
) -> float:
    """The exterior distance estimate |z| log|z| / |dz/dc| of centre + offset, in pixels,
    computed directly in mpmath (0 inside)."""
    import mpmath

    digits = max(30, int(-mpmath.log10(abs(offset) + 1e-300)) + 30) if offset else 60
    with mpmath.workdps(digits):
        c = mpmath.mpc(mpmath.mpf(center_re) + offset.real, mpmath.mpf(center_im) + offset.imag)
        z = mpmath.mpc(0)
        dz = mpmath.mpc(0)
        for _ in range(max_iter):
            if z.real * z.real + z.imag * z.imag > bailout2:
                modulus = abs(z)
                return float(modulus * mpmath.log(modulus) / abs(dz) / pixel_size)
            dz = 2 * z * dz + 1
            z = z * z + c
    return 0.0
