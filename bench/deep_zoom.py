"""Deep-zoom benchmark: ``python -m bench.deep_zoom [--zoom] [--service]``.

Measured in one run, beside the anchor of issue 12 (Fractalshades 1.2.1 on the same
2-core machine, 800x600; its figures are quoted from the issue: the side-by-side driver
for a Fractalshades install in ``.bench-venv`` is not written yet):

* single 800x600 frames, warm, both cores: the whole set (float64, max_iter 500), "gaia"
  and "flake" at image width 1e-30 (max_iter 20000), "gaia" at width 1e-100 (50000);
* ``--zoom``: the 10 s, 30 fps, 400x300 zoom from half-height 1.5 to 1e-30 at gaia through
  ``fractal render`` (its own process, every frame rendered exactly);
* ``--service``: the same zoom through the API with one and with two worker processes
  (embedded stack, as ``bench.service``), and what the chunk plan would take on N
  machines (the chunks' estimated costs scaled to the measured total, longest first).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fractal.locations import GAIA, LOCATIONS

# Fractalshades 1.2.1 on the 2-core machine, as measured in issue 12 (seconds).
ANCHOR = {
    "full set, float64, max_iter 500": 0.40,
    "gaia, width 1e-30": 1.29,
    "flake, width 1e-30": 0.42,
    "gaia, width 1e-100, max_iter 50000": 1.66,
    "zoom 400x300, 10 s at 30 fps": 110.0,
}
WIDTH, HEIGHT = 800, 600


def frame_spec(location: str | None, width: float, max_iter: int) -> dict[str, Any]:
    """An 800x600 frame whose image is ``width`` wide (Fractalshades' convention)."""
    center = list(LOCATIONS[location]) if location else [-0.75, 0.0]
    return {
        "fractal": "mandelbrot",
        "center": center,
        "scale": width / 2 * HEIGHT / WIDTH,
        "max_iter": max_iter,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": 1,
        "colormap": "ocean",
    }


def time_frame(fields: dict[str, Any]) -> dict[str, float]:
    from fractal.engine import FrameRenderer
    from fractal.spec import AnimationSpec

    renderer = FrameRenderer(AnimationSpec.model_validate(fields), threads=os.cpu_count() or 1)
    renderer.render(0)  # warm: kernels loaded, reference orbit cached like a zoom's
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        renderer.render(0)
        best = min(best, time.perf_counter() - started)
    return {
        "seconds": round(best, 3),
        "mean_iterations": round(float(renderer.buffers.counts.mean())),
    }


ZOOM = {
    "fractal": "mandelbrot",
    "center": ",".join(GAIA),
    "scale": 1.5,
    "camera": {"kind": "zoom", "zoom_to": 1e-30},
    "max_iter": 20000,
    "width": 400,
    "height": 300,
    "fps": 30,
    "duration": 10,
}


def zoom_cli(folder: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "fractal.cli",
        "render",
        "--fractal",
        "mandelbrot",
        f"--center={ZOOM['center']}",
        "--scale",
        "1.5",
        "--zoom-to",
        "1e-30",
        "--max-iter",
        "20000",
        "--width",
        "400",
        "--height",
        "300",
        "--fps",
        "30",
        "--duration",
        "10",
        "-o",
        str(folder / "zoom.mp4"),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def zoom_service(folder: Path, workers: int) -> dict[str, Any]:
    import httpx
    from pydantic import SecretStr

    from bench.service import serve, wait_done
    from fractal.cli.up import UpOptions, embedded_services, start_worker
    from fractal.embedded import free_port, stop_process
    from fractal.settings import Settings

    wanted = Settings(
        data_dir=folder / f"stack-{workers}",
        api_port=free_port(),
        jwt_secret=SecretStr("bench-" + "s" * 40),
        worker_activity_slots=1,  # one chunk at a time per worker process
    )
    with embedded_services(wanted, UpOptions(None, None, headless=True)) as settings:
        processes = [start_worker(settings, folder / f"worker-{n}.log") for n in range(workers)]
        try:
            with (
                serve(settings, folder / "api.log") as base_url,
                httpx.Client(base_url=base_url) as client,
            ):
                login = {"username": "bench", "password": "bench-password"}
                client.post("/v1/auth/signup", json=login).raise_for_status()
                token = client.post("/v1/auth/token", data=login).json()["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                started = time.perf_counter()
                task = client.post("/v1/animations", json=ZOOM, headers=headers).json()
                task = wait_done(client, headers, task["id"])
                seconds = time.perf_counter() - started
                assert task["state"] == "succeeded", task
                return {"workers": workers, "seconds": round(seconds, 1)}
        finally:
            for process in processes:
                stop_process(process)


def machines_table(total_seconds: float, machines: list[int]) -> dict[int, float]:
    """The zoom's chunk plan scheduled longest-first on N machines, from the chunks'
    estimated costs scaled to a measured single-machine total."""
    from fractal.chunks import frame_costs, plan_render_chunks
    from fractal.spec import AnimationSpec

    spec = AnimationSpec.model_validate(ZOOM)
    costs = frame_costs(spec)
    chunks = plan_render_chunks(spec, spec.fps)
    per_cost = total_seconds / sum(costs)
    durations = sorted(
        (sum(costs[c.first_frame : c.stop_frame]) * per_cost for c in chunks), reverse=True
    )
    table = {}
    for count in machines:
        loads = [0.0] * count
        for duration in durations:
            heapq.heapreplace(loads, loads[0] + duration)
        table[count] = round(max(loads), 1)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoom", action="store_true", help="the 300-frame zoom via fractal render")
    parser.add_argument(
        "--service", action="store_true", help="the zoom via the API, 1 and 2 workers"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"anchor": "Fractalshades 1.2.1, figures quoted from issue 12"}
    frames = {
        "full set, float64, max_iter 500": frame_spec(None, 3.0, 500),
        "gaia, width 1e-30": frame_spec("gaia", 1e-30, 20000),
        "flake, width 1e-30": frame_spec("flake", 1e-30, 20000),
        "gaia, width 1e-100, max_iter 50000": frame_spec("gaia", 1e-100, 50000),
    }
    for name, fields in frames.items():
        ours = time_frame(fields)
        results[name] = {
            **ours,
            "anchor_s": ANCHOR[name],
            "ratio": round(ours["seconds"] / ANCHOR[name], 2),
        }
    with tempfile.TemporaryDirectory(prefix="fractal-deep-") as scratch:
        folder = Path(scratch)
        if args.zoom:
            seconds = zoom_cli(folder)
            results["zoom 400x300 via fractal render"] = {
                "seconds": round(seconds, 1),
                "anchor_s": ANCHOR["zoom 400x300, 10 s at 30 fps"],
                "ratio": round(seconds / ANCHOR["zoom 400x300, 10 s at 30 fps"], 2),
            }
        if args.service:
            runs = [zoom_service(folder, workers) for workers in (1, 2)]
            results["zoom via the service"] = runs
            results["chunk plan on N machines (s)"] = machines_table(
                runs[0]["seconds"], [1, 2, 4, 8, 16]
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
