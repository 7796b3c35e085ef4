"""Previews and map tiles rendered in the API process: synchronous, never through Temporal.

A small thread pool runs the engine (its kernels release the GIL, so the event loop keeps
serving); identical requests in flight share one render; encoded images are kept in an LRU
of bounded size. Every image is a pure function of what its ETag hashes (the engine
revision, the spec, the frame, the size and the format), so the ETag is known before
rendering and a client's ``If-None-Match`` is answered without work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from fractal.engine import warm_kernels
from fractal.engine.stills import ImageFormat, encode_image, render_map_tile, render_still
from fractal.spec import AnimationSpec


def engine_revision() -> str:
    """Part of every ETag, so an upgraded engine never matches an old image."""
    try:
        return version("fractal-animation-server")
    except PackageNotFoundError:
        return "dev"


@dataclass(frozen=True)
class Still:
    """An encoded image and where its time went (``None``: it came from the cache)."""

    body: bytes
    media_type: str
    etag: str
    render_ms: float | None = None
    encode_ms: float | None = None

    def server_timing(self) -> str:
        if self.render_ms is None:
            return "cache;desc=hit"
        return f"render;dur={self.render_ms:.1f}, encode;dur={self.encode_ms:.1f}"


def etag_of(*parts: object) -> str:
    digest = hashlib.sha256(
        json.dumps([engine_revision(), *parts], sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return f'"{digest[:32]}"'


def preview_etag(
    spec: AnimationSpec, frame: int, width: int, height: int, image_format: ImageFormat
) -> str:
    return etag_of("preview", spec.model_dump(mode="json"), frame, width, height, image_format)


def tile_etag(zoom: int, x: int, y: int, image_format: ImageFormat) -> str:
    return etag_of("tile", zoom, x, y, image_format)


class ImageCache:
    """Encoded images by ETag, least recently used dropped first, at most ``capacity``
    bytes. Used from the event loop only, so it needs no lock."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        body = self._items.get(key)
        if body is not None:
            self._items.move_to_end(key)
        return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.capacity or key in self._items:
            return
        self._items[key] = body
        self.size += len(body)
        while self.size > self.capacity:
            _, dropped = self._items.popitem(last=False)
            self.size -= len(dropped)


class StillRenderer:
    def __init__(self, threads: int, cache_bytes: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stills")
        self._cache = ImageCache(cache_bytes)
        self._in_flight: dict[str, asyncio.Future[Still]] = {}

    def cached(self, etag: str, image_format: ImageFormat) -> Still | None:
        body = self._cache.get(etag)
        return None if body is None else Still(body, image_format.media_type, etag)

    async def preview(
        self,
        spec: AnimationSpec,
        frame: int,
        width: int,
        height: int,
        image_format: ImageFormat,
    ) -> Still:
        etag = preview_etag(spec, frame, width, height, image_format)
        return await self._render(
            etag, image_format, lambda: render_still(spec, frame, width, height)
        )

    async def tile(self, zoom: int, x: int, y: int, image_format: ImageFormat) -> Still:
        etag = tile_etag(zoom, x, y, image_format)
        return await self._render(etag, image_format, lambda: render_map_tile(zoom, x, y))

    async def _render(
        self, etag: str, image_format: ImageFormat, draw: Callable[[], np.ndarray]
    ) -> Still:
        hit = self.cached(etag, image_format)
        if hit is not None:
            return hit
        running = self._in_flight.get(etag)
        if running is not None:  # the same image is being drawn for another request
            return await asyncio.shield(running)
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, _draw_and_encode, etag, image_format, draw
        )
        self._in_flight[etag] = future
        try:
            still = await asyncio.shield(future)
        finally:
            if future.done():
                self._in_flight.pop(etag, None)
            else:  # this request was cancelled: forget the render once it ends
                future.add_done_callback(lambda _: self._in_flight.pop(etag, None))
        self._cache.put(etag, still.body)
        return still

    def warm(self) -> None:
        """Load the kernels and image codecs once, so the first request does not pay."""
        warm_kernels()
        encode_image(np.zeros((16, 16, 3), np.uint8), ImageFormat.webp)
        encode_image(np.zeros((16, 16, 3), np.uint8), ImageFormat.png)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _draw_and_encode(etag: str, image_format: ImageFormat, draw: Callable[[], np.ndarray]) -> Still:
    started = time.perf_counter()
    rgb = draw()
    drawn = time.perf_counter()
    body = encode_image(rgb, image_format)
    return Still(
        body,
        image_format.media_type,
        etag,
        render_ms=(drawn - started) * 1000,
        encode_ms=(time.perf_counter() - drawn) * 1000,
    )
