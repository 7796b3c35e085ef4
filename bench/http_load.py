"""A lean HTTP/1.1 load generator for the benchmarks: keep-alive connections on asyncio
streams, one request prepared once as bytes, responses read by ``Content-Length``.

httpx spends about half a millisecond of this machine's CPU per request, which on two
cores would cap what the benchmark can ask for below what the API can answer; this costs
a few tens of microseconds, so the figures measure the API, not the client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, one per answer
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * (len(ordered) - 1)))]


def _request_bytes(host: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def get_load(
    url: str,
    headers: dict[str, str],
    *,
    clients: int,
    seconds: float | None = None,
    stop: asyncio.Event | None = None,
) -> LoadResult:
    """``clients`` connections each sending GET ``url`` back to back, for ``seconds`` or
    until ``stop`` is set; every answer's latency and status."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = _request_bytes(f"{host}:{port}", parts.path or "/", headers)
    result = LoadResult()
    deadline = None if seconds is None else time.perf_counter() + seconds

    def running() -> bool:
        if stop is not None and stop.is_set():
            return False
        return deadline is None or time.perf_counter() < deadline

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while running():
                started = time.perf_counter()
                writer.write(request)
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    # The server closed the connection: a new one, counted as a failure.
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    status = 0
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result
