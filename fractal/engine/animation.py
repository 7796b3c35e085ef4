"""Render a whole animation on this machine: chunks in parallel threads, then one join."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from fractal.chunks import plan_render_chunks
from fractal.spec import AnimationSpec

from .memory import pin_mmap_threshold
from .video import ENCODER, EncoderSettings, VideoInfo, concat_segments, render_segment


def default_workers() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def render_animation(
    spec: AnimationSpec,
    output: str | os.PathLike[str],
    *,
    workers: int | None = None,
    chunk_frames: int | None = None,
    on_frame: Callable[[int], None] | None = None,
    encoder: EncoderSettings = ENCODER,
) -> VideoInfo:
    """Render ``spec`` to the MP4 ``output``.

    The frames are split into chunks (default: one second of video each on average, as
    many as a multiple of ``workers``, cut where their estimated costs balance), rendered
    by ``workers`` threads (default: one per core), each running the ``nogil`` kernels and
    its own single-threaded encoder, so the cores are busy without oversubscription. The
    segments are then joined without re-encoding.
    """
    pin_mmap_threshold()
    workers = workers or default_workers()
    chunks = plan_render_chunks(spec, chunk_frames or spec.fps, multiple_of=workers)
    failed = threading.Event()
    with tempfile.TemporaryDirectory(prefix="fractal-render-") as scratch:
        paths = [Path(scratch) / f"segment-{chunk.index:05d}.mp4" for chunk in chunks]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render") as pool:
            futures = [
                pool.submit(
                    render_segment,
                    spec,
                    chunk.first_frame,
                    chunk.stop_frame,
                    path,
                    threads=1,
                    on_frame=on_frame,
                    should_stop=failed.is_set,
                    encoder=encoder,
                )
                for chunk, path in zip(chunks, paths, strict=True)
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    failed.set()
                    for pending in futures:
                        pending.cancel()
                    raise future.exception()  # type: ignore[misc]
        return concat_segments(paths, output)
