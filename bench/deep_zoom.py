"""Deep-zoom benchmark: ``python -m bench.deep_zoom [--zoom] [--service] [--no-anchor]``.

Measured in one run, beside the anchor of issue 12, Fractalshades 1.2.1 on the same
machine:

* single 800x600 frames, warm, both cores: the whole set (float64, max_iter 500), "gaia"
  and "flake" at image width 1e-30 (max_iter 20000), "gaia" at width 1e-100 (50000);
  when ``.bench-venv`` holds Fractalshades (``make anchor-venv``), the same views are
  rendered by it in a subprocess of that environment (``bench/fractalshades_anchor.py``)
  right after ours, and each line shows both times and their ratio; without it the
  anchor column is the issue's table, marked so;
* ``--zoom``: the 10 s, 30 fps, 400x300 zoom from half-height 1.5 to 1e-30 at gaia through
  ``fractal render`` (its own process, every frame rendered exactly);
* ``--service``: the same zoom through the API with one and with two worker processes
  (embedded stack, as ``bench.service``), and what the chunk plan would take on N
  machines (the chunks' estimated costs scaled to the measured total, longest first).

Widths and heights: the issue (like Fractalshades) gives a view by its image WIDTH; a
spec's ``scale`` is the half-HEIGHT. For an 800x600 frame of width W the half-height is
W / 2 * 600 / 800 = 3 W / 8, computed in decimal and rounded once to a float.
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
from decimal import Decimal
from pathlib import Path
from typing import Any

from fractal.locations import GAIA, LOCATIONS

# Fractalshades 1.2.1 on the 2-core machine, as quoted in issue 12 (seconds): the anchor
# when its environment is not installed here.
ISSUE_ANCHOR = {
    "full set, float64, max_iter 500": 0.40,
    "gaia, width 1e-30": 1.29,
    "flake, width 1e-30": 0.42,
    "gaia, width 1e-100, max_iter 50000": 1.66,
    "zoom 400x300, 10 s at 30 fps": 110.0,
}
WIDTH, HEIGHT = 800, 600
ANCHOR_PYTHON = Path(__file__).resolve().parent.parent / ".bench-venv" / "bin" / "python"
ANCHOR_SCRIPT = Path(__file__).resolve().parent / "fractalshades_anchor.py"

# name: (location or None for the whole set, image width, max_iter)
FRAMES: dict[str, tuple[str | None, str, int]] = {
    "full set, float64, max_iter 500": (None, "3", 500),
    "gaia, width 1e-30": ("gaia", "1e-30", 20000),
    "flake, width 1e-30": ("flake", "1e-30", 20000),
    "gaia, width 1e-100, max_iter 50000": ("gaia", "1e-100", 50000),
}
WHOLE_SET_CENTER = ("-0.75", "0")


def half_height(image_width: str) -> float:
    """The spec's ``scale`` of an 800x600 frame ``image_width`` wide."""
    return float(Decimal(image_width) / 2 * HEIGHT / WIDTH)


def frame_spec(location: str | None, image_width: str, max_iter: int) -> dict[str, Any]:
    """An 800x600 frame whose image is ``image_width`` wide (Fractalshades' convention)."""
    center = list(LOCATIONS[location]) if location else list(WHOLE_SET_CENTER)
    return {
        "fractal": "mandelbrot",
        "center": center,
        "scale": half_height(image_width),
        "max_iter": max_iter,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": 1,
        "colormap": "ocean",
    }


def anchor_views() -> list[dict[str, Any]]:
    """The frames as Fractalshades takes them: centre strings, image width, pixels."""
    views = []
    for name, (location, image_width, max_iter) in FRAMES.items():
        re, im = LOCATIONS[location] if location else WHOLE_SET_CENTER
        views.append(
            {
                "name": name,
                "x": re,
                "y": im,
                "dx": image_width,
                "nx": WIDTH,
                "ny": HEIGHT,
                "max_iter": max_iter,
                "deep": location is not None,
                # decimal digits: the depth and 20 more, as its examples do
                "precision_digits": 20 - Decimal(image_width).adjusted(),
            }
        )
    return views


class Anchor:
    """Fractalshades in its own environment, driven line by line
    (``bench/fractalshades_anchor.py``) so that its frames alternate with ours."""

    def __init__(self, python: Path) -> None:
        self.process = subprocess.Popen(
            [str(python), str(ANCHOR_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith("ANCHOR "):
                answer: dict[str, Any] = json.loads(line.removeprefix("ANCHOR "))
                return answer
        assert self.process.stderr is not None
        raise RuntimeError(f"the Fractalshades run failed:\n{self.process.stderr.read()[-3000:]}")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def time_frames(anchor: Anchor | None, rounds: int = 3) -> dict[str, Any]:
    """Each frame, warm, best of ``rounds``; with an anchor, its run and ours alternate
    round by round, so both see the same machine load."""
    from fractal.engine import FrameRenderer
    from fractal.spec import AnimationSpec

    results: dict[str, Any] = {}
    views = {view["name"]: view for view in anchor_views()}
    for name, (location, image_width, max_iter) in FRAMES.items():
        spec = AnimationSpec.model_validate(frame_spec(location, image_width, max_iter))
        renderer = FrameRenderer(spec, threads=os.cpu_count() or 1)
        renderer.render(0)  # warm: kernels loaded, reference orbit cached like a zoom's
        if anchor is not None:
            anchor.ask({"warm": views[name]})
        ours, theirs = float("inf"), float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            renderer.render(0)
            ours = min(ours, time.perf_counter() - started)
            if anchor is not None:
                theirs = min(theirs, anchor.ask({"time": name})["seconds"])
        anchor_s = round(theirs, 3) if anchor is not None else ISSUE_ANCHOR[name]
        results[name] = {
            "seconds": round(ours, 3),
            "mean_iterations": round(float(renderer.buffers.counts.mean())),
            "anchor_s": anchor_s,
            "ratio": round(ours / anchor_s, 2),
            "target": "<= 0.5" if location else "",
        }
        renderer.close()
    return results


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

    from bench.service import bench_stack, sign_up, wait_done

    # One chunk at a time per worker process.
    stack = bench_stack(folder / f"stack-{workers}", workers, worker_activity_slots=1)
    with stack as base_url, httpx.Client(base_url=base_url) as client:
        headers = sign_up(client)
        started = time.perf_counter()
        task = client.post("/v1/animations", json=ZOOM, headers=headers).json()
        task = wait_done(client, headers, task["id"])
        seconds = time.perf_counter() - started
        assert task["state"] == "succeeded", task
        return {"workers": workers, "seconds": round(seconds, 1)}


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
    parser.add_argument(
        "--no-anchor", action="store_true", help="quote the issue's anchor, do not run it"
    )
    args = parser.parse_args()
    anchor = None
    if ANCHOR_PYTHON.exists() and not args.no_anchor:
        anchor = Anchor(ANCHOR_PYTHON)
    try:
        frames = time_frames(anchor)
    finally:
        if anchor is not None:
            anchor.close()
    results: dict[str, Any] = {
        "anchor": (
            "Fractalshades 1.2.1 in .bench-venv, alternating with ours, warm, best of 3"
            if anchor is not None
            else "Fractalshades 1.2.1, figures quoted from issue 12"
        ),
        "cpus": os.cpu_count(),
        **frames,
    }
    with tempfile.TemporaryDirectory(prefix="fractal-deep-") as scratch:
        folder = Path(scratch)
        if args.zoom:
            seconds = zoom_cli(folder)
            zoom_anchor = ISSUE_ANCHOR["zoom 400x300, 10 s at 30 fps"]
            results["zoom 400x300 via fractal render"] = {
                "seconds": round(seconds, 1),
                "anchor_s (issue, Fractalshades' movie module)": zoom_anchor,
                "ratio": round(seconds / zoom_anchor, 2),
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
