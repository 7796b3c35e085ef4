"""Keep the render's memory flat however many frames it renders.

Frames are large, short-lived buffers allocated and freed by several threads. glibc's
malloc raises its mmap threshold each time such a buffer is freed, after which new frame
buffers come from the per-thread heaps, which keep the freed memory: the peak then creeps
up with the number of frames (measured: 272 MiB for 120 frames, 324 MiB for 1200).
Pinning the threshold keeps every frame buffer an mmap that goes back to the system when
freed (272 MiB for both).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
FRAME_BUFFER_THRESHOLD = 128 * 1024  # glibc's initial value; frame buffers are larger


@functools.cache
def pin_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold (no-op elsewhere); True if it was set."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, FRAME_BUFFER_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
