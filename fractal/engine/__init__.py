"""The render engine: escape-time kernels, colouring, H.264 segments and their join.

Pure computation on arrays and files: no Temporal, no database, no settings. ``fractal
render`` uses it directly; the worker's activities call it one chunk at a time.

    render_animation(spec, "out.mp4")              # the whole animation, threads over chunks
    render_segment(spec, first, stop, "seg.mp4")   # one chunk: frames first..stop-1
    concat_segments(["a.mp4", "b.mp4"], "out.mp4") # join without re-encoding
    FrameRenderer(spec).render(k)                  # frame k as RGB
    warm_kernels()                                 # compile or load every kernel once
"""

from __future__ import annotations

from .animation import default_workers, render_animation
from .frames import FrameRenderer, warm_kernels
from .kernels import (
    EscapeBuffers,
    JuliaKernel,
    Kernel,
    MandelbrotKernel,
    PerturbationKernel,
    PixelGrid,
    kernel_for,
)
from .memory import pin_mmap_threshold
from .video import (
    ENCODER,
    EncoderSettings,
    RenderCancelled,
    SegmentInfo,
    VideoInfo,
    concat_segments,
    probe_video,
    render_segment,
)

__all__ = [
    "ENCODER",
    "EncoderSettings",
    "EscapeBuffers",
    "FrameRenderer",
    "JuliaKernel",
    "Kernel",
    "MandelbrotKernel",
    "PerturbationKernel",
    "PixelGrid",
    "RenderCancelled",
    "SegmentInfo",
    "VideoInfo",
    "concat_segments",
    "default_workers",
    "kernel_for",
    "pin_mmap_threshold",
    "probe_video",
    "render_animation",
    "render_segment",
    "warm_kernels",
]
