"""Zoom animations end to end: the exact CLI form of the issue, the video, no flicker."""

import json
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from fractal.chunks import frame_costs, plan_render_chunks
from fractal.cli import app
from fractal.locations import LOCATIONS
from fractal.spec import AnimationSpec

runner = CliRunner()
GAIA = ",".join(LOCATIONS["gaia"])


def the_issues_zoom() -> AnimationSpec:
    """The zoom of the issue's CLI form: 10 s at 30 fps, 400x300, to 1e-30 at gaia."""
    return AnimationSpec(
        fractal="mandelbrot",
        center=GAIA,
        scale=1.5,
        camera={"kind": "zoom", "zoom_to": 1e-30},
        max_iter=20000,
        width=400,
        height=300,
        fps=30,
        duration=10,
    )


def decoded_frames(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [
            frame.to_ndarray(format="rgb24").astype(np.float64)
            for frame in container.decode(video=0)
        ]
        assert stream.duration is not None and stream.time_base is not None
        return frames, float(stream.duration * stream.time_base)


@pytest.mark.slow
def test_the_issue_cli_form_renders_a_deep_zoom(tmp_path: Path) -> None:
    """`fractal render --fractal mandelbrot --center='RE,IM' --scale 1.5 --zoom-to 1e-30
    --max-iter 20000 --width .. --height .. --fps 30 --duration ..` (smaller frames)."""
    output = tmp_path / "zoom.mp4"
    result = runner.invoke(
        app,
        [
            "render",
            "--fractal",
            "mandelbrot",
            f"--center={GAIA}",
            "--scale",
            "1.5",
            "--zoom-to",
            "1e-30",
            "--max-iter",
            "20000",
            "--width",
            "64",
            "--height",
            "48",
            "--fps",
            "30",
            "--duration",
            "2",
            "-o",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    frames, duration = decoded_frames(output)
    assert len(frames) == 60 and duration == pytest.approx(2.0)
    # The last frame is 1e-30 deep at gaia: thousands of iterations, full of detail.
    assert frames[-1].std() > 20


# A zoom flickers when the same region changes brightness from one frame to the next. The
# region the next frame shows is the middle of this one, magnified: their mean brightness
# (0-255) may differ by at most this much. Measured: the zoom colourings 1.3 - 4 on the
# zooms below, the classic per-frame histogram 8.5 - 21 (test below).
FLICKER_LIMIT = 6.0
SEAHORSE_ZOOM = (["-0.7436438870371587", "0.1318259042053119"], 1.0, 1.25, 36)
MINIBROT_ZOOM = (["-1.7497", "0.0"], 0.3, 1.4, 24)  # onto the period-3 minibrot


def zoom_spec(
    zoom: tuple[list[str], float, float, int], colormap: str | None = None
) -> AnimationSpec:
    center, scale, factor, frames_count = zoom
    return AnimationSpec(
        fractal="mandelbrot",
        center=center,
        scale=scale,
        camera={"kind": "zoom", "zoom_to": scale * factor ** -(frames_count - 1)},
        width=160,
        height=120,
        frames=frames_count,
        fps=24,
        max_iter=3000,
        colormap=colormap,
    )


def worst_flicker(frames: list[np.ndarray], factor: float) -> float:
    """The largest brightness change, from one frame to the next, of what both show."""
    worst = 0.0
    for before, after in pairwise(frames):
        h, w = before.shape[:2]
        ch, cw = round(h / factor / 2), round(w / factor / 2)
        middle = before[h // 2 - ch : h // 2 + ch, w // 2 - cw : w // 2 + cw]
        worst = max(worst, abs(float(middle.mean()) - float(after.mean())))
    return worst


def test_zoom_frames_keep_their_colours_from_frame_to_frame(tmp_path: Path) -> None:
    """No flicker: along a zoom each point keeps its colour, so the middle of a frame (what
    the next frame shows, magnified) has the next frame's mean brightness, and the mean
    brightness never jumps. A per-frame histogram would move every colour each frame."""
    spec = zoom_spec(SEAHORSE_ZOOM)
    frames_count, factor = SEAHORSE_ZOOM[3], SEAHORSE_ZOOM[2]
    assert spec.colormap is not None and spec.colormap.value == "ocean"  # the zoom default
    output = tmp_path / "zoom.mp4"
    from fractal.engine import render_animation

    info = render_animation(spec, output, workers=2)
    assert info.frames == frames_count and float(info.duration) == pytest.approx(1.5)
    frames, duration = decoded_frames(output)
    assert len(frames) == frames_count and duration == pytest.approx(1.5)
    assert worst_flicker(frames, factor) < FLICKER_LIMIT
    brightness = [frame.mean() for frame in frames]
    assert max(abs(a - b) for a, b in pairwise(brightness)) < 30
    assert np.std(brightness) > 1  # the frames are not all alike


@pytest.mark.parametrize("zoom", [SEAHORSE_ZOOM, MINIBROT_ZOOM], ids=["seahorse", "minibrot"])
def test_the_flicker_check_catches_a_per_frame_histogram(
    zoom: tuple[list[str], float, float, int],
) -> None:
    """The check above can fail: the classic colouring (a histogram of each frame's own
    counts) on the same moving camera breathes, the default zoom colouring does not."""
    from fractal.engine import FrameRenderer

    factor, frames_count = zoom[2], zoom[3]
    flicker = {}
    for colormap in ("classic", None):
        renderer = FrameRenderer(zoom_spec(zoom, colormap))
        frames = [renderer.render(k).astype(np.float64) for k in range(frames_count)]
        flicker[colormap] = worst_flicker(frames, factor)
    assert flicker["classic"] > FLICKER_LIMIT > flicker[None], flicker


def test_zoom_costs_grow_with_depth_and_balance_the_chunks() -> None:
    spec = the_issues_zoom()
    costs = frame_costs(spec)
    assert len(costs) == 300
    assert costs[-1] > 20 * costs[0]  # orders of magnitude along the zoom
    assert all(b >= a * 0.8 for a, b in pairwise(costs[150:]))
    chunks = plan_render_chunks(spec, 30)
    # The deep chunks are shorter than the shallow ones.
    assert chunks[0].frames > 2 * chunks[-1].frames


def test_decimal_centres_survive_json_exactly() -> None:
    re, im = LOCATIONS["gaia"]
    spec = AnimationSpec(fractal="mandelbrot", center=[re, im], scale=1e-30)
    dumped = json.loads(json.dumps(spec.model_dump(mode="json")))
    assert dumped["center"] == {"re": re, "im": im}
    assert AnimationSpec.model_validate(dumped) == spec
    # Values a float holds exactly stay numbers (the original specs' JSON is unchanged).
    assert AnimationSpec().model_dump(mode="json")["c"] == {"re": -0.8, "im": -0.18}


def test_zoom_and_keyframe_views() -> None:
    zoom = AnimationSpec(
        fractal="mandelbrot", scale=2.0, camera={"kind": "zoom", "zoom_to": 2e-6}, frames=7
    )
    scales = [zoom.view_at(f).scale for f in range(7)]
    assert scales[0] == 2.0 and scales[-1] == 2e-6
    ratios = [b / a for a, b in pairwise(scales)]
    assert max(ratios) == pytest.approx(min(ratios))  # exponential: a steady zoom
    keys = AnimationSpec(
        fractal="mandelbrot",
        center=[-0.5, 0],
        scale=1.5,
        camera={"kind": "keyframes", "keys": ["-0.75,0.1,0.01,0.5", {"scale": 0.001}]},
        frames=21,
    )
    middle = keys.view_at(10)
    assert (float(middle.center_re), float(middle.center_im), middle.scale) == (-0.75, 0.1, 0.01)
    assert middle.rotation == 0.5 and keys.view_at(20).scale == 0.001
    halfway = keys.view_at(5)
    assert 0.01 < halfway.scale < 1.5 and -0.75 < float(halfway.center_re) < -0.5


def test_the_issues_zooms_are_admitted_and_a_4k_hour_is_not() -> None:
    """The admission model bounds a zoom by what its frames cost (probed, extrapolated
    below float64), not by pixels x frames x max_iter, which would refuse the issue's
    deep zooms; a 4K hour at max_iter 10000 is still refused."""
    from api.animation_service import admission_refusal, cost_estimate
    from fractal.settings import Settings

    settings = Settings()
    cli_zoom = the_issues_zoom()
    deepest = AnimationSpec.model_validate(
        {
            **cli_zoom.model_dump(),
            "camera": {"kind": "zoom", "zoom_to": 1e-100},
            "max_iter": 50000,
            "width": 800,
            "height": 600,
        }
    )
    for spec in (cli_zoom, deepest):
        assert admission_refusal(settings, cost_estimate(settings, spec)) is None
    huge = AnimationSpec(width=3840, height=2160, frames=3600, max_iter=10000)
    refusal = admission_refusal(settings, cost_estimate(settings, huge))
    assert refusal is not None and "CPU-seconds" in refusal.detail
