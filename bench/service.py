"""Service benchmark: the standard animation through the API vs in-process, and GET latency.

    python -m bench.service            # standard animation (800x600, 120 frames)
    python -m bench.service --quick    # 320x240, 48 frames: a smoke run

Starts the embedded stack (Postgres, Redis, Temporal, local store) in a temp directory,
the API (`fractal api`, its own process) and one worker subprocess, then measures

* end to end: submit -> succeeded -> video downloaded, vs ``render_animation`` in-process
  (ratio; target <= 1.3x);
* GET /v1/animations/{id} latency (p50, p99) from 50 concurrent clients while a render runs,
  and the GETs per second one API process answers with nothing else running (both through
  ``bench/http_load.py``, a client lean enough not to be what is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bench.http_load import LoadResult, get_load
from fractal.cli.client import wait_for_task

STANDARD: dict[str, Any] = {}
QUICK: dict[str, Any] = {"width": 320, "height": 240, "frames": 48}


def render_in_process(spec_fields: dict[str, Any], scratch: Path) -> float:
    from fractal.engine import render_animation, warm_kernels
    from fractal.spec import AnimationSpec

    warm_kernels()
    started = time.perf_counter()
    render_animation(AnimationSpec.model_validate(spec_fields), scratch / "local.mp4")
    return time.perf_counter() - started


@contextlib.contextmanager
def serve(settings: Any, log_path: Path) -> Any:
    """``fractal api`` in its own process, as in production (clients here share no GIL)."""
    from fractal.embedded import stop_process, wait_for_port
    from fractal.settings import settings_to_env

    env = {**os.environ, **settings_to_env(settings)}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fractal.cli", "api"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port("127.0.0.1", settings.api_port, timeout=60, process=process)
        yield f"http://127.0.0.1:{settings.api_port}"
    finally:
        stop_process(process)


@contextlib.contextmanager
def bench_stack(directory: Path, workers: int = 1, **overrides: Any) -> Iterator[str]:
    """What the service benchmarks run against, in ``directory``: the embedded stack (as
    `fractal up` starts it), ``workers`` worker processes (each with a metrics port of its
    own: on a shared one the second would refuse to start) and `fractal api` in its own
    process, with rate limits a benchmark does not hit; yields the API's base URL."""
    from fractal.cli.up import UpOptions, embedded_services, start_worker
    from fractal.embedded import free_port, stop_process
    from fractal.settings import Settings

    wanted = Settings(
        data_dir=directory,
        api_port=free_port(),
        jwt_secret=SecretStr("bench-" + "s" * 40),
        submissions_per_minute=1000,
        submission_burst=100,
        auth_attempts_per_minute=1000,
        **overrides,
    )
    with embedded_services(wanted, UpOptions(None, None, headless=True)) as settings:
        processes = [
            start_worker(
                settings.model_copy(update={"worker_metrics_port": free_port()}),
                directory / f"worker-{n}.log",
            )
            for n in range(workers)
        ]
        try:
            with serve(settings, directory / "api.log") as base_url:
                yield base_url
        finally:
            for process in processes:
                stop_process(process)


def sign_up(client: httpx.Client) -> dict[str, str]:
    """The benchmark's account, signed up and logged in: its authorization header."""
    login = {"username": "bench", "password": "bench-password"}
    client.post("/v1/auth/signup", json=login).raise_for_status()
    token = client.post("/v1/auth/token", data=login).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _phases(task: dict[str, Any]) -> dict[str, float]:
    """Where the service's time went, from the task's own timestamps."""
    created, started, finished = (
        datetime.fromisoformat(task[field]) for field in ("created_at", "started_at", "finished_at")
    )
    return {
        "queued": round((started - created).total_seconds(), 3),
        "workflow": round((finished - started).total_seconds(), 3),
    }


POLL_SECONDS = 0.05  # how often the benchmark's client asks for the task's state


def wait_done(client: httpx.Client, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        return dict(client.get(f"/v1/animations/{task_id}", headers=headers).json())

    return wait_for_task(fetch, interval=POLL_SECONDS)


async def get_latencies_during(
    url: str, headers: dict[str, str], clients: int, stop: threading.Event
) -> LoadResult:
    """``clients`` connections GETting ``url`` back to back until ``stop`` (set by another
    thread when the render ends)."""
    stopped = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.01)
        stopped.set()

    watcher = asyncio.create_task(watch())
    result = await get_load(url, headers, clients=clients, stop=stopped)
    await watcher
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small animation (smoke run)")
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    spec = QUICK if args.quick else STANDARD

    with tempfile.TemporaryDirectory(prefix="fractal-bench-") as directory:
        scratch = Path(directory)
        # Best of three on both sides: the figures are for the code, not the machine's noise.
        local_seconds = min(render_in_process(spec, scratch) for _ in range(3))
        with bench_stack(scratch) as base_url, httpx.Client(base_url=base_url) as client:
            headers = sign_up(client)
            # Warm-up render: the worker's first task pays for imports and caches.
            warm = client.post("/v1/animations", json=QUICK | {"frames": 2}, headers=headers).json()
            wait_done(client, headers, warm["id"])

            runs = []
            for _ in range(3):
                started = time.perf_counter()
                task = client.post("/v1/animations", json=spec, headers=headers).json()
                task = wait_done(client, headers, task["id"])
                video = httpx.get(task["video_url"], timeout=120)
                runs.append((time.perf_counter() - started, task))
                assert task["state"] == "succeeded" and video.status_code == 200
            service_seconds, task = min(runs, key=lambda run: run[0])
            phases = _phases(task)

            load = client.post("/v1/animations", json=spec, headers=headers).json()
            stop = threading.Event()

            def wait_then_stop() -> None:
                wait_done(client, headers, load["id"])
                stop.set()

            waiter = threading.Thread(target=wait_then_stop, daemon=True)
            waiter.start()
            url = f"{base_url}/v1/animations/{load['id']}"
            during = asyncio.run(get_latencies_during(url, headers, args.clients, stop))
            waiter.join()
            # Nothing rendering: what one API process answers (a finished task).
            idle = asyncio.run(get_load(url, headers, clients=args.clients, seconds=5))

    latencies = sorted(during.latencies)
    idle_latencies = sorted(idle.latencies)
    report = {
        "spec": spec or "standard (800x600, 120 frames)",
        "in_process_seconds": round(local_seconds, 3),
        "service_seconds": round(service_seconds, 3),
        "ratio": round(service_seconds / local_seconds, 3),
        "ratio_target": 1.3,
        "service_phases_seconds": phases,
        "clients": args.clients,
        "during_render": {
            "get_requests": len(latencies),
            "get_per_second": round(during.per_second),
            "get_p50_ms": round(1000 * statistics.median(latencies), 1),
            "get_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
            "statuses": during.statuses,
            "p99_target_ms": 100,
        },
        "idle": {
            "get_per_second": round(idle.per_second),
            "get_p50_ms": round(1000 * statistics.median(idle_latencies), 1),
            "get_p99_ms": round(1000 * idle_latencies[int(0.99 * (len(idle_latencies) - 1))], 1),
            "statuses": idle.statuses,
            "per_second_target": 1000,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
