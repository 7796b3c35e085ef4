"""Studio benchmark: preview latency (engine alone and through HTTP), the page's first load,
and the time from submit to the first progress event.

    python -m bench.studio                 # 300 previews each way
    python -m bench.studio --previews 50   # a smoke run

Starts the embedded stack (Postgres, Redis, Temporal, local store) in a temp directory,
`fractal api` in its own process and one worker, then measures

* previews of 480x360, max_iter 500 (the default Julia animation, c moving a little from
  one request to the next as when c is dragged, so nothing comes from a cache): the
  engine alone (render + WebP encode, in this process) and through HTTP
  (``GET /v1/preview``): the server's own time (its ``Server-Timing``: render and encode)
  and the client's round trip, p50 and p99 (targets: server p50 <= 25 ms, p99 <= 60 ms);
* the bytes the page transfers on its first load, without images (Chromium, as a person
  opens it; target <= 300 KB);
* submit -> first event of the progress stream, and -> first event with frames done.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.service import bench_stack, sign_up

PREVIEW = {"width": 480, "height": 360, "max_iter": 500}
# Debian's Chromium, as the browser tests drive it (make test installs it).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * (len(ordered) - 1) + 0.5))]


def summary(milliseconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(milliseconds), 2),
        "p99_ms": round(percentile(milliseconds, 0.99), 2),
        "mean_ms": round(statistics.fmean(milliseconds), 2),
    }


def dragged_c(index: int) -> list[float]:
    """c near the default, moving a little each time (as under a dragging hand)."""
    return [-0.8 + 0.0005 * (index % 400), -0.18 + 0.0003 * (index // 400)]


def engine_alone(count: int) -> dict[str, Any]:
    from fractal.engine import warm_kernels
    from fractal.engine.stills import ImageFormat, encode_image, render_still
    from fractal.spec import AnimationSpec

    warm_kernels()
    encode_image(render_still(AnimationSpec(**PREVIEW), 0, 480, 360), ImageFormat.webp)
    render, total = [], []
    for index in range(count):
        spec = AnimationSpec(**PREVIEW, c=dragged_c(index))
        started = time.perf_counter()
        rgb = render_still(spec, 0, 480, 360)
        drawn = time.perf_counter()
        encode_image(rgb, ImageFormat.webp)
        done = time.perf_counter()
        render.append((drawn - started) * 1000)
        total.append((done - started) * 1000)
    return {"render": summary(render), "render_and_encode": summary(total)}


def through_http(client: httpx.Client, count: int, offset: int) -> dict[str, Any]:
    server, round_trip = [], []
    for index in range(offset, offset + count):
        spec = json.dumps({**PREVIEW, "c": dragged_c(index)})
        started = time.perf_counter()
        response = client.get("/v1/preview", params={"spec": spec, "width": 480, "height": 360})
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        timing = response.headers["server-timing"]
        assert "cache" not in timing, "a benchmark preview came from the cache"
        server.append(sum(float(part.split("dur=")[1]) for part in timing.split(",")))
        round_trip.append(elapsed)
    return {"server_render_and_encode": summary(server), "round_trip": summary(round_trip)}


def time_to_events(client: httpx.Client, headers: dict[str, str], runs: int) -> dict[str, Any]:
    from fractal.cli.client import iter_server_events

    first_event, first_frames = [], []
    for _ in range(runs):
        started = time.perf_counter()
        task = client.post("/v1/animations", json={}, headers=headers).json()
        seen_first = None
        url = f"/v1/animations/{task['id']}/events"
        with client.stream("GET", url, headers=headers, timeout=120) as stream:
            for event in iter_server_events(stream.iter_lines()):
                now = time.perf_counter() - started
                seen_first = seen_first if seen_first is not None else now
                body = json.loads(event.data)
                if body["progress"]["frames_done"] > 0:
                    first_frames.append(now)
                    break
        first_event.append(seen_first or 0.0)
        client.delete(f"/v1/animations/{task['id']}", headers=headers)
        wait_final(client, headers, task["id"])
        client.delete(f"/v1/animations/{task['id']}", headers=headers)
    return {
        "runs": runs,
        "submit_to_first_event_ms": round(1000 * statistics.median(first_event), 1),
        "submit_to_first_frames_event_ms": round(1000 * statistics.median(first_frames), 1),
    }


def wait_final(client: httpx.Client, headers: dict[str, str], task_id: str) -> None:
    from fractal.cli.client import wait_for_task

    wait_for_task(
        lambda: dict(client.get(f"/v1/animations/{task_id}", headers=headers).json()),
        timeout=60,
        interval=0.1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--previews", type=int, default=300)
    parser.add_argument("--event-runs", type=int, default=3)
    args = parser.parse_args()

    report: dict[str, Any] = {"preview": {"size": "480x360", "max_iter": 500}}
    report["preview"]["engine_alone"] = engine_alone(args.previews)
    with tempfile.TemporaryDirectory(prefix="fractal-bench-studio-") as directory:
        limits = {"previews_per_minute": 100_000, "preview_burst": 100_000}
        with (
            bench_stack(Path(directory), **limits) as base_url,
            httpx.Client(base_url=base_url, timeout=60) as client,
        ):
            through_http(client, 20, offset=10_000)  # warm the API process
            report["preview"]["through_http"] = through_http(client, args.previews, 0)
            report["preview"]["target"] = "server p50 <= 25 ms, p99 <= 60 ms"
            report["page_first_load"] = page_bytes(base_url)
            headers = sign_up(client)
            report["progress_events"] = time_to_events(client, headers, args.event_runs)
    print(json.dumps(report, indent=2))


def page_bytes(base_url: str) -> dict[str, Any]:
    """Bytes Chromium transfers to open the page (headers and bodies), images apart."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        return {"skipped": f"{CHROMIUM} is not installed (make test installs it)"}
    counted: list[tuple[str, int]] = []
    images = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        responses: list[Any] = []
        page.on("requestfinished", lambda request: responses.append(request))
        page.goto(base_url + "/")
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)
        page.wait_for_load_state("networkidle")
        for request in responses:
            response = request.response()
            sizes = request.sizes()
            size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
            kind = (response.headers.get("content-type", "") if response else "").split(";")[0]
            if kind.startswith("image/") and not kind.endswith("svg+xml"):
                images += size
                continue
            counted.append((request.url.removeprefix(base_url), size))
        browser.close()
    return {
        "bytes_without_images": sum(size for _, size in counted),
        "target_bytes": 300_000,
        "requests": len(counted),
        "largest": sorted(counted, key=lambda item: -item[1])[:5],
        "image_bytes": images,
    }


if __name__ == "__main__":
    main()
