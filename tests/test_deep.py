"""Deep Mandelbrot frames (perturbation, rebasing, BLA) against direct high-precision counts."""

from collections import deque
from typing import Any

import numpy as np
import pytest

from fractal.engine import FrameRenderer
from fractal.engine.coloring import SMOOTH_BAILOUT2, colorize, palette_period
from fractal.locations import LOCATIONS
from fractal.spec import AnimationSpec
from tests import reference

WIDTH, HEIGHT = 160, 120


def deep_frame(location: str, scale: float, max_iter: int, **fields: Any) -> FrameRenderer:
    re, im = LOCATIONS[location]
    spec = AnimationSpec(
        fractal="mandelbrot",
        center=[re, im],
        scale=scale,
        max_iter=max_iter,
        width=fields.pop("width", WIDTH),
        height=fields.pop("height", HEIGHT),
        frames=1,
        colormap="ocean",
        **fields,
    )
    renderer = FrameRenderer(spec, threads=2)
    renderer.escape_counts(0)
    return renderer


def direct(renderer: FrameRenderer, row: int, column: int) -> int:
    spec = renderer.spec
    grid = renderer.grid
    offset = complex(float(grid.us[column]), float(grid.vs[row]))
    return reference.direct_escape(
        str(spec.center.re), str(spec.center.im), offset, spec.max_iter, SMOOTH_BAILOUT2
    )


def largest_flat_regions(
    counts: np.ndarray, max_iter: int, how_many: int
) -> list[list[tuple[int, int]]]:
    """The largest 4-connected regions of equal escaped counts (a glitch is one)."""
    seen = np.zeros(counts.shape, bool)
    regions = []
    height, width = counts.shape
    for start in zip(*np.nonzero(counts < max_iter), strict=True):
        if seen[start]:
            continue
        value, region, queue = counts[start], [], deque([start])
        seen[start] = True
        while queue:
            j, i = queue.popleft()
            region.append((int(j), int(i)))
            for nj, ni in ((j + 1, i), (j - 1, i), (j, i + 1), (j, i - 1)):
                if (
                    0 <= nj < height
                    and 0 <= ni < width
                    and not seen[nj, ni]
                    and counts[nj, ni] == value
                ):
                    seen[nj, ni] = True
                    queue.append((nj, ni))
        regions.append(region)
    return sorted(regions, key=len, reverse=True)[:how_many]


@pytest.mark.slow
@pytest.mark.parametrize("location", ["gaia", "flake"])
def test_deep_frame_agrees_with_direct_high_precision_counts(location: str) -> None:
    renderer = deep_frame(location, 1e-30, 20000)
    counts = renderer.buffers.counts
    rng = np.random.default_rng(12)
    samples = [(int(rng.integers(HEIGHT)), int(rng.integers(WIDTH))) for _ in range(200)]
    agree = sum(direct(renderer, j, i) == counts[j, i] for j, i in samples)
    assert agree >= 198, f"{agree}/200 pixels agree with the direct computation"
    # Not a trivial frame: the counts vary over the view (thousands deep at gaia).
    assert len(np.unique(counts)) > 20 and counts.min() > (2000 if location == "gaia" else 500)


@pytest.mark.slow
@pytest.mark.parametrize("location", ["gaia", "flake"])
def test_deep_frame_has_no_glitch_blobs(location: str) -> None:
    """A glitch is a blob of one count where the true counts have structure: every large
    flat region's pixels must have the count the direct computation gives them."""
    renderer = deep_frame(location, 1e-30, 20000)
    counts = renderer.buffers.counts
    for region in largest_flat_regions(counts, 20000, 3):
        if len(region) < 12:
            break
        picks = [region[0], region[len(region) // 2], region[-1]]
        assert [direct(renderer, j, i) for j, i in picks] == [counts[p] for p in picks]


@pytest.mark.slow
def test_precision_follows_depth_down_to_1e_100() -> None:
    renderer = deep_frame("gaia", 3.75e-101, 50000)
    counts = renderer.buffers.counts
    assert counts.min() > 20000  # the counts of gaia at this depth (Fractalshades: ~20900)
    rng = np.random.default_rng(3)
    samples = [(int(rng.integers(HEIGHT)), int(rng.integers(WIDTH))) for _ in range(12)]
    agree = sum(abs(direct(renderer, j, i) - int(counts[j, i])) <= 1 for j, i in samples)
    assert agree >= 11


def test_scaled_deltas_reach_1e_minus_300() -> None:
    """At half-height 1e-300 the pixel offsets (1e-302) stay normal numbers through the
    power-of-two scaling; the counts vary and match the direct computation."""
    re, im = LOCATIONS["gaia"]
    spec = AnimationSpec(
        fractal="mandelbrot",
        center=[re + "123", im],
        scale=1e-300,
        max_iter=3000,
        width=32,
        height=24,
        frames=1,
        colormap="fire",
    )
    renderer = FrameRenderer(spec)
    counts = renderer.escape_counts(0)
    assert np.isfinite(renderer.buffers.final_r2).all()
    for j, i in ((0, 0), (12, 16), (23, 31)):
        assert abs(direct(renderer, j, i) - int(counts[j, i])) <= 1


def test_the_reference_orbit_heartbeats() -> None:
    """A deep frame calls keepalive while its reference orbit is computed, before any
    pixel (a long orbit must not starve the activity's heartbeats)."""
    calls = []
    re, im = LOCATIONS["gaia"]
    spec = AnimationSpec(
        fractal="mandelbrot",
        center=[re, im],
        scale=1e-30,
        max_iter=20000,
        width=16,
        height=16,
        frames=1,
    )
    renderer = FrameRenderer(spec, keepalive=lambda: calls.append(renderer.buffers.counts.copy()))
    renderer.buffers.counts[:] = -1
    renderer.escape_counts(0)
    assert len(calls) >= 2 and (calls[0] == -1).all()  # the first came before any pixel


def test_distance_estimates_agree_with_direct_derivatives() -> None:
    """Distance shading carries dz/dc through the same single and BLA steps: the counts
    are the unshaded frame's and the estimates match a direct mpmath derivative."""
    plain = deep_frame("flake", 1e-30, 20000, width=64, height=48)
    shaded = deep_frame("flake", 1e-30, 20000, width=64, height=48, shading="distance")
    counts = shaded.buffers.counts
    assert (counts == plain.buffers.counts).mean() >= 0.99
    spec, grid = shaded.spec, shaded.grid
    distance = shaded.buffers.distance
    assert np.isfinite(distance).all() and (distance[counts < 20000] > 0).all()
    rng = np.random.default_rng(5)
    for _ in range(6):
        j, i = int(rng.integers(48)), int(rng.integers(64))
        offset = complex(float(grid.us[i]), float(grid.vs[j]))
        expected = reference.direct_distance(
            str(spec.center.re), str(spec.center.im), offset, 20000, SMOOTH_BAILOUT2, 2 * grid.pixel
        )
        assert distance[j, i] == pytest.approx(expected, rel=1e-3)


def test_rotated_deep_view_turns_the_picture() -> None:
    """A deep view turned by pi is the unturned one upside down (the deltas are turned)."""
    plain = deep_frame("flake", 1e-30, 20000, width=48, height=36).buffers.counts.copy()
    turned = deep_frame("flake", 1e-30, 20000, width=48, height=36, rotation=np.pi)
    assert (plain[::-1, ::-1] == turned.buffers.counts).mean() > 0.97
    assert not np.array_equal(plain, turned.buffers.counts)


@pytest.mark.parametrize("max_iter", [1, 7, 1000])
def test_every_pixel_stops_at_max_iter(max_iter: int) -> None:
    """At gaia 1e-30 every pixel runs past 2500 iterations: with a smaller max_iter all are
    interior, whether max_iter ends a BLA step, a single step or the first one (the bands
    of two rows have fewer pixels than the kernel has lanes)."""
    counts = deep_frame("gaia", 1e-30, max_iter, width=16, height=16).buffers.counts
    assert (counts == max_iter).all()


def test_band_colours_equal_whole_frame_colours() -> None:
    """Colours written band by band in the threads equal the colouring of the whole frame."""
    renderer = deep_frame("flake", 1e-30, 20000, width=64, height=48)
    rgb = renderer.render(0).copy()
    whole = np.empty_like(rgb)
    buffers = renderer.buffers
    colorize(
        renderer.spec.colouring,
        buffers.counts,
        buffers.final_r2,
        20000,
        whole,
        period=palette_period(renderer.view.scale),
    )
    np.testing.assert_array_equal(rgb, whole)
