"""How close an encoded video is to the frames it was made from (PSNR, as encoders report it)."""

from __future__ import annotations

import av
import numpy as np

from .yuv import plane_view


def yuv_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """The frame's planes as (height, width) arrays, without the row padding."""
    return [plane_view(plane) for plane in frame.planes]


def psnr_yuv(decoded: av.VideoFrame, rgb: np.ndarray) -> float:
    """PSNR over all Y, U and V samples (as ffmpeg's psnr filter averages them) of a decoded
    frame against the raw RGB frame converted to yuv420p by swscale."""
    reference = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    squared = 0.0
    samples = 0
    for got, want in zip(yuv_planes(decoded), yuv_planes(reference), strict=True):
        squared += float(((got.astype(np.float64) - want) ** 2).sum())
        samples += got.size
    mse = squared / samples
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
