"""What the API's observability costs per request: ``python -m bench.api_observability``.

The same small FastAPI app (a ``/healthz`` route and a ``/v1/animations/{task_id}`` route
with a path parameter, both trivial) is called in-process through ASGI, side by side:

- ``plain``: no middleware;
- ``metrics+logs``: ``RequestObservability`` (request id, Prometheus counters and
  histogram, the JSON access line written to /dev/null at INFO);
- ``+tracing``: the same plus OpenTelemetry's FastAPI instrumentation with an SDK tracer
  provider whose spans go nowhere (what tracing on costs before export).

No network and no database, so the figures are the middleware's own cost per request, to
compare with the API's real GET latency (a few milliseconds with Postgres). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI

from api.observability import ApiMetrics, RequestObservability, instrument_tracing
from fractal.observability import ContextFilter, json_formatter


def build_app(variant: str) -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/v1/animations")

    @router.get("/{task_id}")
    async def read(task_id: str) -> dict[str, str]:
        return {"id": task_id}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    if variant != "plain":
        app.add_middleware(RequestObservability, metrics=ApiMetrics.create())
    if variant == "+tracing":
        from opentelemetry.sdk.trace import TracerProvider

        instrument_tracing(app, TracerProvider())
    return app


def asgi_get(app: Any, path: str) -> Callable[[], Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def call() -> None:
        await app(dict(scope), receive, send)

    return call


async def per_request_seconds(app: Any, path: str, requests: int) -> float:
    call = asgi_get(app, path)
    for _ in range(200):  # warm up: route compilation, first metric series
        await call()
    started = time.perf_counter()
    for _ in range(requests):
        await call()
    return (time.perf_counter() - started) / requests


def quiet_json_access_log() -> None:
    """The access line formatted as in the container (JSON), written nowhere."""
    sink = open(os.devnull, "w")  # noqa: SIM115 - for the whole run
    handler = logging.StreamHandler(sink)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    quiet_json_access_log()
    variants = ("plain", "metrics+logs", "+tracing")
    apps = {variant: build_app(variant) for variant in variants}
    paths = {
        "healthz (DEBUG, not written)": "/healthz",
        "task GET": f"/v1/animations/{uuid.uuid4()}",
    }
    results: dict[str, Any] = {}
    for label, path in paths.items():
        best: dict[str, list[float]] = {variant: [] for variant in variants}
        for _ in range(args.rounds):  # interleaved, so drift hits every variant alike
            for variant in variants:
                seconds = asyncio.run(per_request_seconds(apps[variant], path, args.requests))
                best[variant].append(seconds)
        plain = min(best["plain"])
        results[label] = {
            variant: {
                "us_per_request_best": round(min(times) * 1e6, 1),
                "us_per_request_median": round(statistics.median(times) * 1e6, 1),
                "overhead_us": round((min(times) - plain) * 1e6, 1),
            }
            for variant, times in best.items()
        }
    print(
        json.dumps(
            {
                "machine": f"{platform.processor() or platform.machine()}, "
                f"Python {platform.python_version()}",
                "requests_per_round": args.requests,
                "rounds": args.rounds,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
