"""The render's own metrics, recorded by the activities where they already report progress.

They are made on the Temporal runtime's metric meter, so the worker's one Prometheus
endpoint (``FRACTAL_WORKER_METRICS_PORT``, the SDK's ``PrometheusConfig``) serves them
next to the SDK's own (task slots, poll and schedule-to-start latencies, ...). Counters
get ``_total`` there; durations are seconds. Without an endpoint the meter is a no-op.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from temporalio.common import MetricMeter

# Chunks are about a second of video: a few seconds to minutes of work each.
SECONDS_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

FRAMES = "fractal_render_frames"
KERNEL_SECONDS = "fractal_render_kernel_seconds"
ENCODE_SECONDS = "fractal_render_encode_seconds"
CHUNK_SECONDS = "fractal_render_chunk_duration_seconds"
JOIN_SECONDS = "fractal_render_join_duration_seconds"
BYTES_WRITTEN = "fractal_render_bytes_written"
ACTIVE_CHUNKS = "fractal_render_active_chunks"
FAILURES = "fractal_render_failures"

HISTOGRAM_BUCKETS = {
    name: SECONDS_BUCKETS for name in (KERNEL_SECONDS, ENCODE_SECONDS, CHUNK_SECONDS, JOIN_SECONDS)
}

# Why a chunk attempt did not finish (the ``reason`` label).
INVALID_SPEC = "invalid_spec"
CANCELLED = "cancelled"
WORKER_SHUTDOWN = "worker_shutdown"
STORAGE = "storage"
ERROR = "error"
FAILURE_REASONS = (INVALID_SPEC, CANCELLED, WORKER_SHUTDOWN, STORAGE, ERROR)


class RenderMetrics:
    def __init__(self, meter: MetricMeter = MetricMeter.noop) -> None:
        self.frames = meter.create_counter(FRAMES, "Frames rendered and encoded", "frames")
        self.kernel_seconds = meter.create_histogram_float(
            KERNEL_SECONDS,
            "Seconds one chunk spent computing and colouring its frames (the Numba kernels)",
            "s",
        )
        self.encode_seconds = meter.create_histogram_float(
            ENCODE_SECONDS,
            "Seconds one chunk spent converting its frames to YUV and encoding them (libx264)",
            "s",
        )
        self.chunk_seconds = meter.create_histogram_float(
            CHUNK_SECONDS, "Wall time of a successful render_chunk attempt, upload included", "s"
        )
        self.join_seconds = meter.create_histogram_float(
            JOIN_SECONDS, "Wall time of a successful join_segments", "s"
        )
        self.bytes_written = meter.create_counter(
            BYTES_WRITTEN, "Bytes uploaded to the object store, by kind (segment, video)", "By"
        )
        self._active_gauge = meter.create_gauge(
            ACTIVE_CHUNKS, "render_chunk attempts running in this worker now", "chunks"
        )
        self._failures = meter.create_counter(
            FAILURES,
            "render_chunk attempts that did not finish, by reason: invalid_spec, cancelled, "
            "worker_shutdown, storage, error",
            "attempts",
        )
        self._active = 0
        self._lock = threading.Lock()  # chunks run in the worker's thread pool
        self._active_gauge.set(0)
        # Every series exists from the start (at 0), so rates and alerts see no gap.
        for reason in FAILURE_REASONS:
            self._failures.with_additional_attributes({"reason": reason}).add(0)
        for kind in ("segment", "video"):
            self.bytes_written.with_additional_attributes({"kind": kind}).add(0)

    @contextlib.contextmanager
    def chunk_running(self) -> Iterator[None]:
        self._add_active(1)
        try:
            yield
        finally:
            self._add_active(-1)

    def _add_active(self, delta: int) -> None:
        with self._lock:
            self._active += delta
            self._active_gauge.set(self._active)

    def written(self, kind: str, size: int) -> None:
        self.bytes_written.with_additional_attributes({"kind": kind}).add(size)

    def failed(self, reason: str) -> None:
        self._failures.with_additional_attributes({"reason": reason}).add(1)
