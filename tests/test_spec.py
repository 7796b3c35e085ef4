import math

import pytest
from pydantic import ValidationError

from fractal.chunks import chunk_count, plan_render_chunks
from fractal.spec import AnimationSpec, Colormap, format_validation_error


def errors_of(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        AnimationSpec.model_validate(fields)
    return format_validation_error(caught.value)


def test_defaults_are_the_original_animation() -> None:
    spec = AnimationSpec()
    assert (spec.width, spec.height, spec.fps, spec.frame_count) == (800, 600, 24, 120)
    assert spec.duration == 5.0
    assert spec.max_iter == 500 and spec.scale == 1.2 and spec.supersample == 1
    assert spec.colormap is Colormap.classic
    assert spec.c_at(0) == complex(-0.8, -0.18)
    # c rotates about the origin by 0.01 rad per frame
    c10 = spec.c_at(10)
    assert abs(c10) == pytest.approx(abs(complex(-0.8, -0.18)))
    angle = math.atan2(c10.imag, c10.real) - math.atan2(-0.18, -0.8)
    assert angle == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("fields", "field", "detail"),
    [
        ({"width": 801}, "width", "even number from 16 to 3840"),
        ({"width": 10_000}, "width", "even number from 16 to 3840"),
        ({"height": 8}, "height", "even number from 16 to 2160"),
        ({"frames": 0}, "frames", "from 1 to 3600"),
        ({"frames": 3601}, "frames", "from 1 to 3600"),
        ({"fps": 0}, "fps", "from 1 to 60"),
        ({"max_iter": 0}, "max_iter", "from 1 to 100000"),
        ({"max_iter": 100_001}, "max_iter", "from 1 to 100000"),
        ({"supersample": 5}, "supersample", "from 1 to 4"),
        ({"scale": 0}, "scale", "from 1e-300 to 1e+06"),
        ({"scale": 1e-20}, "spec", "scale: the view goes down to 1e-20; julia is rendered"),
        ({"fractal": "tricorn", "camera": {"kind": "zoom", "zoom_to": 1e-13}}, "spec", "1e-12"),
        ({"camera": {"kind": "zoom", "zoom_to": 0}}, "camera.zoom.zoom_to", "from 1e-300"),
        ({"camera": {"kind": "dolly"}}, "camera", "still"),
        ({"camera": {"kind": "keyframes", "keys": ["1,2"]}}, "camera.keyframes.keys.0", "re,im"),
        ({"camera": {"kind": "keyframes", "keys": []}}, "camera.keyframes.keys", "at least 1"),
        ({"center": ["-1.9x", 0]}, "center.re", "expected a decimal number"),
        ({"center": ["1" * 1200, 0]}, "center.re", "at most 1100 characters"),
        ({"center": [True, 0]}, "center.re", "boolean"),
        ({"center": ["1e999", 0]}, "center.re", "finite"),
        ({"center": ["1e999999999", 0]}, "center.re", "finite"),
        ({"center": ["nan", 0]}, "center.re", "finite"),
        ({"rotation": 4}, "rotation", "from -3.14159 to 3.14159"),
        ({"fractal": "multibrot", "power": 9}, "power", "from 3 to 8"),
        ({"fractal": "multibrot", "power": 2}, "power", "from 3 to 8"),
        ({"power": 4}, "spec", "power: only multibrot and multibrot_julia"),
        ({"shading": "distance"}, "spec", "shading: distance is for mandelbrot only"),
        ({"shading": "phong"}, "shading", "none"),
        ({"scale": float("inf")}, "scale", "finite"),
        ({"scale": float("nan")}, "scale", "finite"),
        ({"c": {"re": float("nan"), "im": 0}}, "c.re", "finite"),
        ({"c": [0.1, float("inf")]}, "c.im", "finite"),
        ({"c": "1,2,3"}, "c", "re,im"),
        ({"fractal": "mandelbulb"}, "fractal", "julia"),
        ({"colormap": "rainbow"}, "colormap", "classic"),
        ({"duration": 0}, "duration", "from 0.001 to 3600"),
        ({"duration": 1000, "fps": 24}, "spec", "allowed 1..3600"),
        ({"path": {"kind": "spiral"}}, "path", "rotate"),
        ({"path": {"kind": "line", "points": []}}, "path.line.points", "at least 1"),
        ({"c": [5, 0]}, "spec", "|c| <= 4"),
        ({"unknown_field": 1}, "unknown_field", "not permitted"),
    ],
)
def test_bad_input_names_the_field_and_the_allowed_values(
    fields: dict[str, object], field: str, detail: str
) -> None:
    message = errors_of(**fields)
    assert message.startswith(f"{field}:") or f"\n{field}:" in message, message
    assert detail in message


def test_frames_and_duration() -> None:
    assert AnimationSpec(duration=2.5, fps=30).frame_count == 75
    assert AnimationSpec(frames=48, fps=24).duration == 2.0
    assert AnimationSpec(frames=48, duration=2.0).frame_count == 48
    assert "disagree" in errors_of(frames=10, duration=2.0)


def test_c_shorthands_and_json_round_trip() -> None:
    spec = AnimationSpec.model_validate({"c": "-0.7,0.27", "center": [0.1, 0]})
    assert complex(spec.c) == complex(-0.7, 0.27)
    again = AnimationSpec.model_validate_json(spec.model_dump_json())
    assert again == spec


def test_line_and_keyframe_paths_visit_their_points() -> None:
    points = [[0.3, 0.5], [-0.4, 0.6]]
    for kind in ("line", "keyframes"):
        spec = AnimationSpec(frames=21, c=[-0.8, 0.156], path={"kind": kind, "points": points})
        assert spec.c_at(0) == pytest.approx(complex(-0.8, 0.156))
        assert spec.c_at(10) == pytest.approx(complex(0.3, 0.5))
        assert spec.c_at(20) == pytest.approx(complex(-0.4, 0.6))
    line = AnimationSpec(frames=3, c=[0, 0], path={"kind": "line", "points": [[1, 1]]})
    assert line.c_at(1) == pytest.approx(0.5 + 0.5j)
    smooth = AnimationSpec(frames=21, c=[0, 0], path={"kind": "keyframes", "points": points})
    straight = AnimationSpec(frames=21, c=[0, 0], path={"kind": "line", "points": points})
    assert smooth.c_at(5) != pytest.approx(straight.c_at(5))  # a curve, not a polyline


def test_chunks_cover_every_frame_once() -> None:
    for frames, per in [(120, 24), (121, 24), (1, 24), (100, 7), (3600, 1000)]:
        spec = AnimationSpec(width=16, height=16, frames=frames)
        chunks = plan_render_chunks(spec, per)
        covered = [f for chunk in chunks for f in range(chunk.first_frame, chunk.stop_frame)]
        assert covered == list(range(frames))
        assert len(chunks) == chunk_count(frames, per)
    with pytest.raises(ValueError):
        chunk_count(0, 24)


def test_chunk_count_rounds_up_to_a_multiple_of_the_workers() -> None:
    assert chunk_count(120, 24, multiple_of=2) == 6
    assert chunk_count(120, 24, multiple_of=4) == 8
    assert chunk_count(120, 24, multiple_of=5) == 5  # already a multiple
    assert chunk_count(3, 24, multiple_of=8) == 3  # never more chunks than frames


def test_balanced_chunks_cover_every_frame_once_with_about_equal_cost() -> None:
    from fractal.chunks import chunks_from_stops, frame_costs, plan_balanced_chunks

    spec = AnimationSpec()
    costs = frame_costs(spec)
    # The standard animation's last frames have c in the Mandelbrot set: far costlier.
    assert min(costs[114:]) > 1.4 * max(costs[:100])
    for count in (1, 2, 5, 6, 17, 120):
        chunks = plan_balanced_chunks(costs, count)
        assert len(chunks) == count
        frames = [f for chunk in chunks for f in range(chunk.first_frame, chunk.stop_frame)]
        assert frames == list(range(120))
        shares = [sum(costs[c.first_frame : c.stop_frame]) for c in chunks]
        if count <= 6:
            # Whole frames cannot split exactly; within one costly frame of equal.
            assert max(shares) - min(shares) <= 2 * max(costs)
    six = plan_balanced_chunks(costs, 6)
    assert six[-1].frames < six[0].frames  # the costly end gets fewer frames
    assert plan_balanced_chunks([1.0] * 3, 5) == chunks_from_stops([1, 2, 3])
    assert [c.frames for c in plan_balanced_chunks([1.0] * 12, 4)] == [3, 3, 3, 3]
    with pytest.raises(ValueError):
        plan_balanced_chunks([], 2)


def test_render_chunks_follow_the_frame_budget_and_the_workers() -> None:
    from fractal.chunks import plan_render_chunks

    spec = AnimationSpec()
    assert len(plan_render_chunks(spec, 24)) == 5
    assert len(plan_render_chunks(spec, 24, multiple_of=2)) == 6
    assert len(plan_render_chunks(AnimationSpec(frames=2), 24, multiple_of=4)) == 2


def test_cost_estimate_is_bounded_for_the_largest_animations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fractal import chunks

    calls: list[int] = []
    original = chunks.critical_escape

    def counted(c: complex, max_iter: int) -> int:
        calls.append(max_iter)
        return original(c, max_iter)

    monkeypatch.setattr(chunks, "critical_escape", counted)
    # c = -1 never escapes: the worst case for the estimate, which runs in the API.
    spec = AnimationSpec(
        c=[-1, 0], max_iter=10_000, frames=3600, path={"kind": "rotate", "step": 0}
    )
    costs = chunks.frame_costs(spec)
    assert len(costs) == 3600 and len(set(costs)) == 1
    assert costs[0] == 1.0 + 10_000 / chunks.CRITICAL_ITERATIONS_PER_FRAME_COST
    assert len(calls) <= chunks.COST_SAMPLES
    assert max(calls) <= chunks.COST_ITERATIONS


def test_huge_c_components_are_a_validation_error_not_an_overflow() -> None:
    with pytest.raises(ValidationError):
        AnimationSpec(c=[1.7e308, 1.7e308])
