"""RGB frames to the encoder's yuv420p planes, in a ``nogil`` kernel.

Doing the conversion here instead of through swscale keeps it off the GIL, so chunk
threads convert frames in parallel, and writes straight into the frame's planes.
The matrix is BT.601, limited range, as the encoder's VUI tags say.
"""

from __future__ import annotations

import av
import numpy as np
from numba import njit


@njit(
    "void(uint8[:, :, ::1], uint8[:, :], uint8[:, :], uint8[:, :])",
    nogil=True,
    cache=True,
)
def rgb_to_yuv420(rgb: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """BT.601 limited range; chroma from the mean colour of each 2x2 block."""
    height, width, _ = rgb.shape
    for j in range(height):
        for i in range(width):
            r = np.int32(rgb[j, i, 0])
            g = np.int32(rgb[j, i, 1])
            b = np.int32(rgb[j, i, 2])
            y[j, i] = np.uint8(((66 * r + 129 * g + 25 * b + 128) >> 8) + 16)
    for j in range(height // 2):
        for i in range(width // 2):
            r = np.int32(0)
            g = np.int32(0)
            b = np.int32(0)
            for dj in range(2):
                for di in range(2):
                    r += rgb[2 * j + dj, 2 * i + di, 0]
                    g += rgb[2 * j + dj, 2 * i + di, 1]
                    b += rgb[2 * j + dj, 2 * i + di, 2]
            # Sums of four pixels: the >> 10 divides by 4 and by the matrix's 256.
            u[j, i] = np.uint8(((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128)
            v[j, i] = np.uint8(((112 * r - 94 * g - 18 * b + 512) >> 10) + 128)


def plane_view(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A writable (height, width) view of a frame plane (rows may be padded)."""
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def yuv420_frame(rgb: np.ndarray) -> av.VideoFrame:
    """A new yuv420p ``VideoFrame`` holding ``rgb`` (height, width, 3, uint8)."""
    height, width, _ = rgb.shape
    frame = av.VideoFrame(width, height, "yuv420p")
    rgb_to_yuv420(rgb, *(plane_view(plane) for plane in frame.planes))
    return frame
