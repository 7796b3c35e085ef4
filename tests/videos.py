"""Helpers to inspect MP4 files in tests."""

from __future__ import annotations

from pathlib import Path


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
