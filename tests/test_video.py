import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from fractal.chunks import chunks_from_stops
from fractal.engine import (
    EncoderSettings,
    FrameRenderer,
    concat_segments,
    render_animation,
    render_segment,
)
from fractal.engine.quality import psnr_yuv
from fractal.spec import AnimationSpec
from tests.videos import top_level_boxes


@pytest.fixture(scope="module")
def standard_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AnimationSpec]:
    """The standard animation rendered in 4 chunks and joined."""
    spec = AnimationSpec()
    folder = tmp_path_factory.mktemp("standard")
    segments = []
    for chunk in chunks_from_stops([30, 60, 90, 120]):
        path = folder / f"segment-{chunk.index}.mp4"
        render_segment(spec, chunk.first_frame, chunk.stop_frame, path)
        segments.append(path)
    assert len(segments) == 4
    output = folder / "julia.mp4"
    info = concat_segments(segments, output)
    assert info.frames == 120 and info.duration == Fraction(5)
    return output, spec


def test_joined_video_is_web_playable_h264(standard_video: tuple[Path, AnimationSpec]) -> None:
    path, _ = standard_video
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (800, 600)
        assert stream.frames == 120
        assert stream.duration is not None and stream.time_base is not None
        assert stream.duration * stream.time_base == Fraction(5)
        assert container.duration == 5_000_000  # microseconds
        keyframes = [i for i, frame in enumerate(container.decode(stream)) if frame.key_frame]
    assert {0, 30, 60, 90} <= set(keyframes)
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes


def test_timestamps_are_continuous_across_segments(
    standard_video: tuple[Path, AnimationSpec],
) -> None:
    path, _ = standard_video
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.dts is not None and p.size]
    assert stream.time_base is not None
    frame_ticks = int(Fraction(1, 24) / stream.time_base)
    stamps = [(_ticks(p.pts), _ticks(p.dts)) for p in packets]
    dts = [decode for _, decode in stamps]
    assert all(b - a == frame_ticks for a, b in itertools.pairwise(dts))
    pts = sorted(present for present, _ in stamps)
    assert len(pts) == 120
    assert all(b - a == frame_ticks for a, b in itertools.pairwise(pts))
    assert all(present >= decode for present, decode in stamps)


def _ticks(timestamp: int | None) -> int:
    assert timestamp is not None
    return timestamp


def test_joined_frames_are_within_40_db_of_the_raw_frames(
    standard_video: tuple[Path, AnimationSpec],
) -> None:
    path, spec = standard_video
    renderer = FrameRenderer(spec)
    worst = float("inf")
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            worst = min(worst, psnr_yuv(frame, renderer.render(index)))
    assert index == 119
    assert worst >= 40.0, worst


def test_segments_of_one_or_two_frames_join_with_the_others(tmp_path: Path) -> None:
    """A chunk stored in parts can end with a part of one or two frames, which has no
    B-frames: before, its decoding timestamps did not line up with the next segment's and
    the muxer refused the join (EINVAL), so a resumed chunk could never be joined."""
    spec = AnimationSpec(width=160, height=120, frames=48, max_iter=200)
    cuts = [(0, 1), (1, 23), (23, 24), (24, 26), (26, 48)]
    paths = []
    for first, stop in cuts:
        path = tmp_path / f"{first:02d}.mp4"
        render_segment(spec, first, stop, path)
        paths.append(path)
    info = concat_segments(paths, tmp_path / "joined.mp4")
    assert info.frames == 48 and info.duration == 2
    renderer = FrameRenderer(spec)
    with av.open(str(tmp_path / "joined.mp4")) as container:
        stream = container.streams.video[0]
        stamps = [(_ticks(p.pts), _ticks(p.dts)) for p in container.demux(stream) if p.size]
    dts = [decode for _, decode in stamps]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)
    assert all(present >= decode for present, decode in stamps)
    with av.open(str(tmp_path / "joined.mp4")) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 48
    # Each frame where it belongs (a frame out of place scores far below 30 dB).
    assert min(psnr_yuv(frame, renderer.render(i)) for i, frame in enumerate(frames)) >= 30


def test_low_quality_encoding_is_caught_by_the_psnr_check(tmp_path: Path) -> None:
    # The PSNR measure can fail: a very coarse encode falls well below 40 dB.
    spec = AnimationSpec(frames=6)
    path = tmp_path / "coarse.mp4"
    render_segment(spec, 0, 6, path, encoder=EncoderSettings(crf=45))
    renderer = FrameRenderer(spec)
    with av.open(str(path)) as container:
        scores = [psnr_yuv(f, renderer.render(i)) for i, f in enumerate(container.decode(video=0))]
    assert min(scores) < 35


def test_segments_with_different_settings_are_refused(tmp_path: Path) -> None:
    spec = AnimationSpec(width=64, height=48, frames=4)
    other = AnimationSpec(width=96, height=48, frames=4)
    render_segment(spec, 0, 2, tmp_path / "a.mp4")
    render_segment(other, 2, 4, tmp_path / "b.mp4")
    with pytest.raises(ValueError, match="different settings"):
        concat_segments([tmp_path / "a.mp4", tmp_path / "b.mp4"], tmp_path / "out.mp4")


def test_segment_bounds_are_checked(tmp_path: Path) -> None:
    spec = AnimationSpec(width=64, height=48, frames=4)
    with pytest.raises(ValueError, match="outside"):
        render_segment(spec, 2, 5, tmp_path / "x.mp4")


def test_render_animation_in_parallel_chunks(tmp_path: Path) -> None:
    spec = AnimationSpec(width=160, height=120, frames=50, fps=10, colormap="ocean")
    seen: list[int] = []
    info = render_animation(
        spec, tmp_path / "out.mp4", workers=2, chunk_frames=7, on_frame=seen.append
    )
    assert sorted(seen) == list(range(50))
    assert info.frames == 50 and info.duration == Fraction(5)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 50


def test_yuv_conversion_is_bt601_with_box_filtered_chroma() -> None:
    from fractal.engine.quality import yuv_planes
    from fractal.engine.yuv import yuv420_frame

    rng = np.random.default_rng(7)
    noisy = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    y, u, v = yuv_planes(yuv420_frame(noisy))
    # Independent swscale conversion: same luma (to rounding).
    reference_y = yuv_planes(
        av.VideoFrame.from_ndarray(noisy, format="rgb24").reformat(format="yuv420p")
    )[0]
    assert np.abs(y.astype(int) - reference_y).max() <= 1
    # Chroma: BT.601 limited range of the mean colour of each 2x2 block.
    mean = noisy.astype(np.float64).reshape(24, 2, 32, 2, 3).mean(axis=(1, 3))
    r, g, b = mean[..., 0], mean[..., 1], mean[..., 2]
    expected_u = 128 + (-38 * r - 74 * g + 112 * b) / 256
    expected_v = 128 + (112 * r - 94 * g - 18 * b) / 256
    assert np.abs(u - expected_u).max() <= 1.0
    assert np.abs(v - expected_v).max() <= 1.0
    # A flat colour converts exactly as swscale converts it.
    flat = np.zeros((16, 16, 3), np.uint8)
    flat[:] = (30, 140, 250)
    ours = yuv_planes(yuv420_frame(flat))
    theirs = yuv_planes(av.VideoFrame.from_ndarray(flat, format="rgb24").reformat(format="yuv420p"))
    for mine, reference in zip(ours, theirs, strict=True):
        assert np.abs(mine.astype(int) - reference).max() <= 1


def test_mmap_threshold_is_pinned_on_glibc() -> None:
    import platform

    from fractal.engine.memory import pin_mmap_threshold

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert pin_mmap_threshold() is expected
