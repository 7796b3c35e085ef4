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
