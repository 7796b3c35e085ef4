"""Escape counts to RGB.

``classic`` reproduces the original service: a histogram equalisation of the escape counts
of the escaped pixels, ``value = 255 ** cdf``, colour ``(value, value, 255)``, interior
black. The palettes colour the smooth (continuous) iteration count, so there are no bands.
Along a moving camera the palettes run in cycles of ``palette_period(scale)`` smooth
iterations instead: a point's colour depends on its own count and on the depth alone,
never on the rest of the frame (no histogram), so a zoom does not flicker, and the period
grows slowly with depth so that deep frames, whose counts spread over thousands, keep
their detail. Newton's fractal is coloured by the root reached, darker the longer it
took; distance shading darkens the boundary by the distance estimate.
All functions are ``nogil`` so frames can be coloured in parallel threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fractal.spec import Colormap

# Escape radius used with the smooth colourings: a large bailout makes the continuous
# iteration count n + 1 - log2(log|z|) smooth; the classic colouring keeps radius 2.
SMOOTH_BAILOUT2 = 256.0**2
CLASSIC_BAILOUT2 = 4.0


def bailout2_for(colormap: Colormap) -> float:
    return CLASSIC_BAILOUT2 if colormap is Colormap.classic else SMOOTH_BAILOUT2


# Smooth iterations per palette cycle at the scale of the whole set, and how much longer
# the cycle gets per decade of zoom (counts grow with depth; the cycle follows slowly).
BASE_PERIOD = 20.0
PERIOD_GROWTH_PER_DECADE = 0.35


def palette_period(scale: float) -> float:
    """Smooth iterations per palette cycle for a view of half-height ``scale``."""
    decades = max(0.0, math.log10(2.0 / scale))
    return BASE_PERIOD * (1.0 + PERIOD_GROWTH_PER_DECADE * decades)


@njit("void(int32[:, ::1], int64, uint8[:, :, ::1])", nogil=True, cache=True)
def histogram_blue(counts: np.ndarray, max_iter: int, rgb: np.ndarray) -> None:
    height, width = counts.shape
    hist = np.zeros(max_iter, np.int64)
    escaped = 0
    for j in range(height):
        for i in range(width):
            n = counts[j, i]
            if n < max_iter:
                hist[n] += 1
                escaped += 1
    lut = np.zeros(max_iter, np.uint8)
    running = 0
    for n in range(max_iter):
        running += hist[n]
        if escaped > 0:
            lut[n] = np.uint8(255.0 ** (running / escaped))
    for j in range(height):
        for i in range(width):
            n = counts[j, i]
            if n < max_iter:
                value = lut[n]
                rgb[j, i, 0] = value
                rgb[j, i, 1] = value
                rgb[j, i, 2] = 255
            else:
                rgb[j, i, 0] = 0
                rgb[j, i, 1] = 0
                rgb[j, i, 2] = 0


@njit(
    "void(int32[:, ::1], float64[:, ::1], int64, float32[:, ::1], uint8[:, :, ::1])",
    nogil=True,
    cache=True,
)
def smooth_palette(
    counts: np.ndarray,
    final_r2: np.ndarray,
    max_iter: int,
    palette: np.ndarray,
    rgb: np.ndarray,
) -> None:
    height, width = counts.shape
    entries = palette.shape[0]
    scale = 1.0 / np.log1p(max_iter)
    for j in range(height):
        for i in range(width):
            n = counts[j, i]
            if n >= max_iter:
                rgb[j, i, 0] = 0
                rgb[j, i, 1] = 0
                rgb[j, i, 2] = 0
                continue
            # Continuous iteration count: n + 1 - log2(log|z|), |z| = sqrt(final_r2).
            nu = n + 1.0 - np.log2(0.5 * np.log(final_r2[j, i]))
            t = np.log1p(max(nu, 0.0)) * scale
            position = min(max(t, 0.0), 1.0) * (entries - 1)
            low = int(position)
            high = min(low + 1, entries - 1)
            frac = position - low
            for channel in range(3):
                value = palette[low, channel] * (1.0 - frac) + palette[high, channel] * frac
                rgb[j, i, channel] = np.uint8(value + 0.5)


@njit(
    "void(int32[:, ::1], float64[:, ::1], int64, float32[:, ::1], float64, uint8[:, :, ::1])",
    nogil=True,
    cache=True,
)
def cyclic_palette(
    counts: np.ndarray,
    final_r2: np.ndarray,
    max_iter: int,
    palette: np.ndarray,
    period: float,
    rgb: np.ndarray,
) -> None:
    """The palette back and forth (so any palette cycles seamlessly) once per ``period``
    smooth iterations; interior black.

    A point's colour depends on its own smooth count and on the depth (through the
    period, which changes slowly), never on the rest of the frame: along a zoom every
    point keeps its colour from one frame to the next, so the frames differ only by what
    enters and leaves the view.
    """
    height, width = counts.shape
    entries = palette.shape[0]
    for j in range(height):
        for i in range(width):
            n = counts[j, i]
            if n >= max_iter:
                rgb[j, i, 0] = 0
                rgb[j, i, 1] = 0
                rgb[j, i, 2] = 0
                continue
            nu = n + 1.0 - np.log2(0.5 * np.log(final_r2[j, i]))
            phase = (max(nu, 0.0) / period) % 2.0
            t = phase if phase <= 1.0 else 2.0 - phase
            position = t * (entries - 1)
            low = min(int(position), entries - 1)
            high = min(low + 1, entries - 1)
            frac = position - low
            for channel in range(3):
                value = palette[low, channel] * (1.0 - frac) + palette[high, channel] * frac
                rgb[j, i, channel] = np.uint8(value + 0.5)


@njit(
    "void(int32[:, ::1], float64[:, ::1], uint8[:, ::1], int64, float32[:, ::1], uint8[:, :, ::1])",
    nogil=True,
    cache=True,
)
def newton_colours(
    counts: np.ndarray,
    distance2: np.ndarray,
    roots: np.ndarray,
    max_iter: int,
    palette: np.ndarray,
    rgb: np.ndarray,
) -> None:
    """One hue per root (three points of the palette), darker with the (smooth) number of
    steps it took; starting points that never converged are black."""
    height, width = counts.shape
    entries = palette.shape[0]
    for j in range(height):
        for i in range(width):
            root = roots[j, i]
            if root == 0:
                rgb[j, i, 0] = 0
                rgb[j, i, 1] = 0
                rgb[j, i, 2] = 0
                continue
            # Quadratic convergence: log(distance²) doubles every step.
            ratio = np.log(max(distance2[j, i], 1e-300)) / np.log(1e-12)
            nu = counts[j, i] - np.log2(max(ratio, 1.0))
            shade = 0.25 + 0.75 * np.exp(-0.12 * max(nu, 0.0))
            entry = int((0.2 + 0.3 * (root - 1)) * (entries - 1))
            for channel in range(3):
                rgb[j, i, channel] = np.uint8(palette[entry, channel] * shade + 0.5)


@njit("void(uint8[:, :, ::1], float64[:, ::1])", nogil=True, cache=True)
def distance_shade(rgb: np.ndarray, distance: np.ndarray) -> None:
    """Darken pixels closer than about two pixels to the boundary (distance estimate)."""
    height, width, _ = rgb.shape
    for j in range(height):
        for i in range(width):
            d = distance[j, i]
            if d <= 0.0:
                continue  # interior (already black)
            shade = min(1.0, np.sqrt(d / 2.0))
            for channel in range(3):
                rgb[j, i, channel] = np.uint8(rgb[j, i, channel] * shade + 0.5)


@njit("void(uint8[:, :, ::1], int64, uint8[:, :, ::1])", nogil=True, cache=True)
def box_downsample(source: np.ndarray, factor: int, target: np.ndarray) -> None:
    height, width, _ = target.shape
    area = factor * factor
    for j in range(height):
        for i in range(width):
            for channel in range(3):
                total = 0
                for dj in range(factor):
                    for di in range(factor):
                        total += source[j * factor + dj, i * factor + di, channel]
                target[j, i, channel] = (total + area // 2) // area


def _gradient(stops: list[tuple[float, tuple[int, int, int]]], entries: int = 256) -> np.ndarray:
    positions = np.array([p for p, _ in stops])
    colours = np.array([c for _, c in stops], dtype=np.float64)
    t = np.linspace(0.0, 1.0, entries)
    channels = [np.interp(t, positions, colours[:, ch]) for ch in range(3)]
    return np.ascontiguousarray(np.stack(channels, axis=1), dtype=np.float32)


PALETTES: dict[Colormap, np.ndarray] = {
    Colormap.fire: _gradient(
        [
            (0.0, (0, 0, 0)),
            (0.25, (120, 10, 0)),
            (0.5, (230, 90, 0)),
            (0.75, (255, 200, 40)),
            (1.0, (255, 255, 230)),
        ]
    ),
    Colormap.ocean: _gradient(
        [
            (0.0, (0, 7, 100)),
            (0.16, (32, 107, 203)),
            (0.42, (237, 255, 255)),
            (0.64, (255, 170, 0)),
            (0.86, (0, 2, 0)),
            (1.0, (0, 7, 100)),
        ]
    ),
    Colormap.twilight: _gradient(
        [
            (0.0, (20, 10, 40)),
            (0.3, (90, 40, 140)),
            (0.6, (220, 120, 160)),
            (0.85, (250, 220, 190)),
            (1.0, (255, 255, 255)),
        ]
    ),
}


# Newton's root colours for the classic colouring: the blue gradient of its histogram.
CLASSIC_GRADIENT = _gradient([(0.0, (0, 0, 255)), (0.5, (128, 128, 255)), (1.0, (230, 230, 255))])


def colorize(
    colormap: Colormap,
    counts: np.ndarray,
    final_r2: np.ndarray,
    max_iter: int,
    rgb: np.ndarray,
    *,
    period: float = 0.0,
    roots: np.ndarray | None = None,
    distance: np.ndarray | None = None,
) -> None:
    """Write the colours of ``counts`` (same height and width) into ``rgb``.

    ``period`` > 0: the palettes cycle every ``period`` smooth iterations (a moving
    camera); ``roots``: colour by Newton root; ``distance``: shade by distance estimate.
    """
    if roots is not None:
        newton_colours(
            counts, final_r2, roots, max_iter, PALETTES.get(colormap, CLASSIC_GRADIENT), rgb
        )
    elif colormap is Colormap.classic:
        histogram_blue(counts, max_iter, rgb)
    elif period > 0.0:
        cyclic_palette(counts, final_r2, max_iter, PALETTES[colormap], period, rgb)
    else:
        smooth_palette(counts, final_r2, max_iter, PALETTES[colormap], rgb)
    if distance is not None:
        distance_shade(rgb, distance)
