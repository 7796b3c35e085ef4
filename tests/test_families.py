"""Every float64 kernel of the new families equals its plain Python reference exactly."""

import numpy as np
import pytest

from fractal.engine import FrameRenderer
from fractal.engine.coloring import CLASSIC_BAILOUT2, SMOOTH_BAILOUT2
from fractal.spec import AnimationSpec
from tests import reference

# (fractal, center, scale, max_iter, size, c, power): views on and off the symmetry axes
# (the mirrored half-frame path and the full one), odd heights, interiors (cycle checks).
CASES = [
    ("mandelbrot", complex(-0.75, 0.0), 1.3, 300, (48, 35), 0j, None),
    ("mandelbrot", complex(-0.745, 0.11), 0.02, 1000, (40, 30), 0j, None),
    ("burning_ship", complex(-0.5, -0.5), 1.3, 200, (40, 30), 0j, None),
    ("burning_ship", complex(-1.76, -0.03), 0.05, 500, (36, 28), 0j, None),
    ("burning_ship_julia", 0j, 1.5, 200, (40, 31), complex(-1.2, -0.2), None),
    ("tricorn", complex(-0.3, 0.0), 1.4, 300, (40, 31), 0j, None),
    ("tricorn", complex(-0.1, 0.6), 0.4, 300, (36, 28), 0j, None),
    ("tricorn_julia", 0j, 1.4, 300, (38, 30), complex(-0.1, 0.3), None),
    ("multibrot", complex(-0.2, 0.0), 1.3, 200, (40, 31), 0j, 3),
    ("multibrot", complex(0.1, 0.3), 0.6, 300, (36, 28), 0j, 5),
    ("multibrot", complex(0.0, 0.0), 1.3, 150, (32, 24), 0j, 8),
    ("multibrot_julia", 0j, 1.3, 200, (40, 30), complex(0.4, 0.2), 4),
    ("multibrot_julia", 0j, 1.3, 200, (40, 30), complex(-0.5, 0.3), 3),
]


@pytest.mark.parametrize(("kind", "center", "scale", "max_iter", "size", "c", "power"), CASES)
@pytest.mark.parametrize("colormap", ["classic", "fire"])
def test_family_counts_match_the_plain_reference_exactly(
    kind: str,
    center: complex,
    scale: float,
    max_iter: int,
    size: tuple[int, int],
    c: complex,
    power: int | None,
    colormap: str,
) -> None:
    width, height = size
    # Odd heights are not valid specs; the renderer's grid takes them (tested through it).
    spec = AnimationSpec(
        fractal=kind,
        power=power,
        c=c,
        path={"kind": "line", "points": [c]},
        center=center,
        scale=scale,
        max_iter=max_iter,
        width=width,
        height=height + height % 2,
        frames=1,
        colormap=colormap,
    )
    renderer = FrameRenderer(spec)
    counts = renderer.escape_counts(0)
    bailout2 = CLASSIC_BAILOUT2 if colormap == "classic" else SMOOTH_BAILOUT2
    expected = reference.family_counts(
        kind, width, spec.height, center, scale, max_iter, bailout2, c, power or 2
    )
    np.testing.assert_array_equal(counts, expected)
    # Not trivial: many different counts.
    assert len(np.unique(expected)) > 5
    escaped = counts < max_iter
    if colormap == "fire":
        assert (renderer.buffers.final_r2[escaped] > bailout2).all()


@pytest.mark.parametrize(
    ("center", "scale", "max_iter"),
    [(0j, 1.5, 60), (complex(0.3, 0.4), 0.5, 40), (complex(-0.2, 0.0), 0.01, 80)],
)
def test_newton_counts_and_roots_match_the_plain_reference(
    center: complex, scale: float, max_iter: int
) -> None:
    spec = AnimationSpec(
        fractal="newton", center=center, scale=scale, max_iter=max_iter, width=40, height=30
    )
    renderer = FrameRenderer(spec)
    counts = renderer.escape_counts(0)
    expected, roots = reference.newton_counts(40, 30, center, scale, max_iter)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(renderer.buffers.roots, roots)
    if center == 0j:
        assert set(np.unique(roots)) == {1, 2, 3}
        rgb = renderer.render(0)
        assert len({tuple(p) for p in rgb.reshape(-1, 3)}) > 10


def test_symmetric_views_are_mirrored_and_still_exact() -> None:
    """The mirrored half-frame path (row-mirror for the real-axis families, point symmetry
    for even Julia maps) gives the same counts as iterating every pixel."""
    for kind, center, c in (
        ("tricorn", complex(-0.3, 0.0), 0j),
        ("multibrot", complex(-0.2, 0.0), 0j),
        ("burning_ship_julia", 0j, complex(-1.2, -0.2)),
    ):
        spec = AnimationSpec(
            fractal=kind,
            center=center,
            c=c,
            path={"kind": "line", "points": [c]},
            width=48,
            height=36,
            max_iter=200,
            frames=1,
        )
        renderer = FrameRenderer(spec)
        kernel = renderer.kernel_for_view(renderer.view)
        assert kernel.symmetry(c, renderer.grid).value != "none"
        expected = reference.family_counts(kind, 48, 36, center, 1.2, 200, 4.0, c, spec.degree)
        np.testing.assert_array_equal(renderer.escape_counts(0), expected)


def test_rotated_views_turn_the_picture() -> None:
    """A view turned by pi is the unturned view upside down (pixel for pixel)."""
    base = dict(
        fractal="burning_ship",
        center=[-0.5, -0.5],
        scale=1.0,
        width=32,
        height=24,
        max_iter=100,
        frames=1,
    )
    plain = FrameRenderer(AnimationSpec(**base)).escape_counts(0).copy()
    turned = FrameRenderer(AnimationSpec(**base, rotation=np.pi)).escape_counts(0)
    assert (plain[::-1, ::-1] == turned).mean() > 0.97  # cos(pi) is not exactly -1
    assert not np.array_equal(plain, turned)
