"""Helpers to inspect MP4 files in tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def yuv_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [
        np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)[
            :, : plane.width
        ]
        for plane in frame.planes
    ]


def psnr_yuv(decoded: av.VideoFrame, rgb: np.ndarray) -> float:
    """PSNR over all Y, U and V samples (as ffmpeg's psnr filter averages them) of a decoded
    frame against the raw RGB frame converted to yuv420p the way the encoder input is."""
    reference = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    squared = 0.0
    samples = 0
    for got, want in zip(yuv_planes(decoded), yuv_planes(reference), strict=True):
        squared += float(((got.astype(np.float64) - want) ** 2).sum())
        samples += got.size
    mse = squared / samples
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (moov before mdat = faststart)."""
    data = path.read_bytes()
    boxes = []
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        boxes.append(kind)
        if size < 8:
            break
        offset += size
    return boxes
