import numpy as np
import pytest

from fractal.engine import FrameRenderer
from fractal.engine.coloring import CLASSIC_BAILOUT2, SMOOTH_BAILOUT2, colorize
from fractal.spec import AnimationSpec, Colormap
from tests import reference

CASES = [
    # (c, center, scale, max_iter, size): centred views use the mirrored half-frame path,
    # off-centre ones iterate every pixel; the c values cover fast escapes, thin dust,
    # interior with attracting cycles (the cycle detector) and the default animation.
    (complex(-0.8, -0.18), 0j, 1.2, 500, (40, 30)),
    (complex(-0.12, 0.75), 0j, 1.2, 300, (48, 36)),  # Douady rabbit: large interior
    (complex(-1.0, 0.0), 0j, 1.5, 200, (34, 26)),  # basilica, period-2 cycle
    (complex(0.285, 0.01), complex(0.1, -0.2), 0.7, 1000, (32, 24)),
    (complex(-0.4, 0.6), complex(0.0, 0.3), 0.9, 64, (38, 20)),
    (complex(-0.8, 0.156), 0j, 1.2, 1, (16, 16)),
]


@pytest.mark.parametrize(("c", "center", "scale", "max_iter", "size"), CASES)
@pytest.mark.parametrize("bailout2", [CLASSIC_BAILOUT2, SMOOTH_BAILOUT2])
def test_escape_counts_match_the_plain_reference_exactly(
    c: complex, center: complex, scale: float, max_iter: int, size: tuple[int, int], bailout2: float
) -> None:
    width, height = size
    colormap = Colormap.classic if bailout2 == CLASSIC_BAILOUT2 else Colormap.fire
    spec = AnimationSpec(
        width=width,
        height=height,
        c=c,
        center=center,
        scale=scale,
        max_iter=max_iter,
        frames=1,
        colormap=colormap,
    )
    counts = FrameRenderer(spec).escape_counts(0)
    expected = reference.escape_counts(width, height, center, scale, c, max_iter, bailout2)
    assert counts.dtype == np.int32
    np.testing.assert_array_equal(counts, expected)


def test_interior_and_escaping_pixels_are_both_present_in_the_test_frames() -> None:
    # Guards the test above against passing on trivial frames.
    counts = reference.escape_counts(48, 36, 0j, 1.2, complex(-0.12, 0.75), 300, 4.0)
    assert (counts == 300).sum() > 100 and (counts < 10).sum() > 100


def test_default_colouring_equals_the_original_histogram_colouring() -> None:
    for frame in (0, 60, 119):  # 119 has a large interior
        spec = AnimationSpec()
        renderer = FrameRenderer(spec)
        rgb = renderer.render(frame).copy()
        expected = reference.histogram_blue(renderer.buffers.counts, spec.max_iter)
        np.testing.assert_array_equal(rgb, expected)
        assert (rgb[..., 2] == 255).any() and (rgb == 0).all(axis=2).any() == (frame == 119)


def test_smooth_colourings_have_no_bands_and_black_interior() -> None:
    spec = AnimationSpec(width=160, height=120, c=[-0.12, 0.75], colormap="fire", frames=1)
    renderer = FrameRenderer(spec)
    rgb = renderer.render(0)
    interior = renderer.buffers.counts == spec.max_iter
    assert interior.any() and (rgb[interior] == 0).all()
    # Histogram colouring has one colour per integer count; the smooth count gives many
    # more distinct colours than there are distinct counts.
    outside = ~interior
    colours = {tuple(p) for p in rgb[outside].reshape(-1, 3)}
    assert len(colours) > 2 * len(np.unique(renderer.buffers.counts[outside]))
    classic = np.empty_like(rgb)
    colorize(
        Colormap.classic, renderer.buffers.counts, renderer.buffers.final_r2, spec.max_iter, classic
    )
    assert not np.array_equal(classic, rgb)


def test_supersampling_averages_subpixels() -> None:
    plain = AnimationSpec(width=32, height=24, frames=1, supersample=1)
    fine = AnimationSpec(width=64, height=48, frames=1, scale=1.2)
    ss = AnimationSpec(width=32, height=24, frames=1, supersample=2)
    hi = FrameRenderer(fine).render(0).astype(np.int64)
    expected = (hi.reshape(24, 2, 32, 2, 3).sum(axis=(1, 3)) + 2) // 4
    got = FrameRenderer(ss).render(0)
    np.testing.assert_array_equal(got, expected.astype(np.uint8))
    assert not np.array_equal(got, FrameRenderer(plain).render(0))


MANDELBROT_VIEWS = [
    # (center, scale, max_iter, size): whole set (mirrored, cardioid and bulb inside),
    # an odd height on the axis, off-axis seahorse valley, a boundary zoom with cycles.
    (complex(-0.75, 0.0), 1.3, 300, (48, 36)),
    (complex(-0.5, 0.0), 1.2, 120, (41, 31)),
    (complex(-0.745, 0.11), 0.02, 1000, (40, 30)),
    (complex(-1.25, 0.02), 0.1, 500, (36, 28)),
    (complex(0.3, 0.0), 0.05, 1, (16, 16)),
]


@pytest.mark.parametrize(("center", "scale", "max_iter", "size"), MANDELBROT_VIEWS)
@pytest.mark.parametrize("bailout2", [CLASSIC_BAILOUT2, SMOOTH_BAILOUT2])
def test_mandelbrot_counts_match_the_plain_reference_exactly(
    center: complex, scale: float, max_iter: int, size: tuple[int, int], bailout2: float
) -> None:
    from fractal.engine import EscapeBuffers, PixelGrid
    from fractal.engine.kernels.mandelbrot import MandelbrotKernel

    width, height = size
    grid = PixelGrid.for_view(width, height, center, scale)
    out = EscapeBuffers.for_grid(grid, want_r2=True)
    MandelbrotKernel().escape_counts(0j, grid, max_iter, bailout2, out)
    expected = reference.mandelbrot_counts(width, height, center, scale, max_iter, bailout2)
    np.testing.assert_array_equal(out.counts, expected)
    escaped = out.counts < max_iter
    assert (out.final_r2[escaped] > bailout2).all()


def test_mandelbrot_reference_views_have_inside_and_outside() -> None:
    counts = reference.mandelbrot_counts(48, 36, complex(-0.75, 0.0), 1.3, 300, 4.0)
    assert (counts == 300).sum() > 100 and (counts < 10).sum() > 100
