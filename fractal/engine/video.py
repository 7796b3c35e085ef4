"""H.264 segments and joining them into one web-playable MP4 without re-encoding.

Every segment is encoded with exactly the same settings (``ENCODER``), starts with an IDR
keyframe and uses closed GOPs, so the segments' packets can be laid end to end: joining
is a remux with pts/dts shifted by the frames before each segment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av

from fractal.spec import AnimationSpec

from .frames import FrameRenderer
from .yuv import yuv420_frame

Destination = str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True)
class EncoderSettings:
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    # Measured on the standard animation (docs/engine.md): veryfast + tune=animation, CRF 19
    # is faster, smaller and better (>= 41 dB) than plain veryfast at CRF 18.
    preset: str = "veryfast"
    tune: str = "animation"
    crf: int = 19
    # open-gop=0: every GOP is closed, so a segment never refers to frames of another.
    # The VUI tags say BT.601 limited range, which is what the RGB -> YUV conversion uses,
    # so players convert back with the same matrix.
    x264_params: str = "open-gop=0:colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m"
    keyframe_seconds: int = 2
    options: dict[str, str] = field(default_factory=dict)

    def codec_options(self, fps: int, threads: int) -> dict[str, str]:
        return {
            "preset": self.preset,
            "tune": self.tune,
            "crf": str(self.crf),
            "x264-params": self.x264_params,
            "g": str(self.keyframe_seconds * fps),
            "threads": str(threads),
            **self.options,
        }


ENCODER = EncoderSettings()


@dataclass(frozen=True)
class SegmentInfo:
    first_frame: int
    stop_frame: int
    size: int  # bytes written
    # Where the time went (perf_counter seconds): computing and colouring the frames, then
    # converting them to YUV and encoding them. The worker reports both as metrics.
    kernel_seconds: float = 0.0
    encode_seconds: float = 0.0


class RenderCancelled(Exception):
    """Raised by ``render_segment`` when ``should_stop`` asks it to stop."""


def _open_output(destination: Destination, faststart: bool = False) -> av.container.OutputContainer:
    options = {"movflags": "+faststart"} if faststart else {}
    return av.open(destination, mode="w", format="mp4", options=options)


def render_segment(
    spec: AnimationSpec,
    first_frame: int,
    stop_frame: int,
    destination: Destination,
    *,
    threads: int = 1,
    on_frame: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    end_early: Callable[[], bool] | None = None,
    encoder: EncoderSettings = ENCODER,
    keepalive: Callable[[], None] | None = None,
) -> SegmentInfo:
    """Render frames ``first_frame .. stop_frame - 1`` into an MP4 segment.

    Frames are streamed into the encoder one at a time, so memory does not grow with the
    segment's length. ``on_frame(frame)`` is called after each frame is encoded;
    ``should_stop()`` is polled before each frame (raises ``RenderCancelled``);
    ``end_early()`` is polled after each frame but the last: when it says so, the segment
    is closed there, a complete segment of the frames so far (its ``stop_frame`` says where
    it ended), so a long chunk can be stored in parts. ``keepalive()`` is called while a
    frame is being computed (during a deep frame's reference orbit and between its bands
    of rows), so a slow frame can heartbeat or stop.
    """
    if not 0 <= first_frame < stop_frame <= spec.frame_count:
        raise ValueError(
            f"frames {first_frame}..{stop_frame} are outside the animation's 0..{spec.frame_count}"
        )
    renderer = FrameRenderer(spec, keepalive=keepalive)
    with _open_output(destination) as container:
        stream = container.add_stream(
            encoder.codec, rate=spec.fps, options=encoder.codec_options(spec.fps, threads)
        )
        assert isinstance(stream, av.VideoStream)
        stream.width = spec.width
        stream.height = spec.height
        stream.pix_fmt = encoder.pix_fmt
        kernel_seconds = encode_seconds = 0.0
        for frame_number in range(first_frame, stop_frame):
            if should_stop is not None and should_stop():
                raise RenderCancelled(f"stopped before frame {frame_number}")
            started = time.perf_counter()
            rgb = renderer.render(frame_number)
            rendered = time.perf_counter()
            frame = yuv420_frame(rgb)
            frame.pts = frame_number - first_frame
            container.mux(stream.encode(frame))
            encoded = time.perf_counter()
            kernel_seconds += rendered - started
            encode_seconds += encoded - rendered
            if on_frame is not None:
                on_frame(frame_number)
            if frame_number + 1 < stop_frame and end_early is not None and end_early():
                stop_frame = frame_number + 1
                break
        started = time.perf_counter()
        container.mux(stream.encode(None))
        encode_seconds += time.perf_counter() - started
    size = _size_of(destination)
    return SegmentInfo(first_frame, stop_frame, size, kernel_seconds, encode_seconds)


def _size_of(destination: Destination) -> int:
    if isinstance(destination, (str, os.PathLike)):
        return Path(destination).stat().st_size
    return destination.tell()


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    duration: Fraction  # seconds
    size: int


def concat_segments(
    segments: Sequence[Destination], destination: str | os.PathLike[str]
) -> VideoInfo:
    """Join MP4 segments made by ``render_segment`` into one faststart MP4, no re-encoding.

    Each segment's packets are shifted by the end of the previous segment (its last pts
    plus duration), which keeps pts and dts continuous and the total duration exact.

    A segment of one or two frames has no B-frames, so its decoding timestamps start at its
    first frame's, not two frames before like the others': its dts are moved back by the
    difference (earlier decoding is always allowed), otherwise the next segment's first dts
    would fall behind its last one and the muxer would refuse them.
    """
    if not segments:
        raise ValueError("no segments to join")
    delays = [_decoding_delay(segment) for segment in segments]
    delay = max(delays)
    frames = 0
    with _open_output(destination, faststart=True) as output:
        out_stream = None
        offset = Fraction(0)  # seconds already written
        for segment, own_delay in zip(segments, delays, strict=True):
            if not isinstance(segment, (str, os.PathLike)):
                segment.seek(0)
            with av.open(segment, mode="r") as source:
                in_stream = source.streams.video[0]
                if out_stream is None:
                    out_stream = output.add_stream_from_template(in_stream)
                elif in_stream.codec_context.extradata != out_stream.codec_context.extradata:
                    raise ValueError("segments were encoded with different settings")
                time_base = in_stream.time_base
                assert time_base is not None
                shift = offset / time_base
                if shift.denominator != 1:
                    raise ValueError(f"segment boundary {offset}s is not on the {time_base} grid")
                earlier = (delay - own_delay) / time_base
                if earlier.denominator != 1:
                    raise ValueError("segment decoding delays are not on the time grid")
                end = offset
                for packet in _packets(source.demux(in_stream)):
                    if packet.pts is None or packet.dts is None or not packet.duration:
                        raise ValueError("segment packet without timestamps or duration")
                    packet.pts += int(shift)
                    packet.dts += int(shift - earlier)
                    end = max(end, (packet.pts + packet.duration) * time_base)
                    frames += 1
                    packet.stream = out_stream
                    output.mux(packet)
                offset = end
    size = Path(destination).stat().st_size
    return VideoInfo(frames=frames, duration=offset, size=size)


def _decoding_delay(segment: Destination) -> Fraction:
    """How long before its first frame's presentation a segment's decoding starts."""
    if not isinstance(segment, (str, os.PathLike)):
        segment.seek(0)
    with av.open(segment, mode="r") as source:
        stream = source.streams.video[0]
        assert stream.time_base is not None
        for packet in _packets(source.demux(stream)):
            if packet.pts is None or packet.dts is None:
                raise ValueError("segment packet without timestamps")
            return Fraction(packet.pts - packet.dts) * stream.time_base
    raise ValueError("a segment without frames")


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frames, duration and size of an MP4 (one joined by ``concat_segments``), read from
    its packets without decoding."""
    frames = 0
    end = Fraction(0)
    with av.open(path, mode="r") as source:
        stream = source.streams.video[0]
        time_base = stream.time_base
        assert time_base is not None
        for packet in _packets(source.demux(stream)):
            frames += 1
            if packet.pts is not None:
                end = max(end, (packet.pts + (packet.duration or 0)) * time_base)
    return VideoInfo(frames=frames, duration=end, size=Path(path).stat().st_size)


def _packets(packets: Iterable[av.Packet]) -> Iterable[av.Packet]:
    # The demuxer ends with an empty flush packet (no dts); it is not part of the video.
    for packet in packets:
        if packet.dts is not None and packet.size > 0:
            yield packet
