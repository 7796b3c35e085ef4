"""Calibration of the admission model: ``python -m bench.admission``.

Renders a matrix of specs chosen to cover what a request can vary (size, supersampling,
colouring, iterations, c inside, outside and on the edge of the Mandelbrot set, a view
wholly inside a parabolic basin) and prints, side by side, what each really cost and what
``fractal.admission.estimate_cost`` says, as ratios measured / estimate. The estimate is an
upper bound: every ratio must stay below 1, the largest is the margin left.

* CPU: thread CPU time of ``render_segment`` (kernel, colouring, encoding on one thread,
  as a worker's chunk runs), in this process after the kernels are warm.
* memory: the peak resident size of a fresh process while it renders one chunk of
  ``MEMORY_FRAMES`` frames (enough to fill the encoder's look-ahead; the peak is reset
  through ``/proc/self/clear_refs`` just before) less its size before, against
  ``chunk_memory_bytes``; and the resident
  size of an idle worker's imports against ``WORKER_BASE_BYTES``.
* output: the bytes of the H.264 segment against ``output_bytes``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fractal import admission
from fractal.locations import FLAKE, GAIA
from fractal.spec import AnimationSpec

FRAMES = 12
MEMORY_FRAMES = 48

# (name, spec overrides): every case renders FRAMES frames with c turning 0.05 rad a frame,
# or standing still where a particular c is the point.
STILL = {"path": {"kind": "rotate", "step": 0.0}}
CPU_CASES: list[tuple[str, dict[str, Any]]] = [
    ("standard 800x600", {}),
    ("standard, smooth colouring", {"colormap": "fire"}),
    ("1920x1080 classic", {"width": 1920, "height": 1080}),
    ("1920x1080 twilight", {"width": 1920, "height": 1080, "colormap": "twilight"}),
    ("supersample 4, max_iter 1", {"supersample": 4, "max_iter": 1}),
    ("supersample 4, ocean", {"supersample": 4, "colormap": "ocean"}),
    ("c = 0 (inside), max_iter 10000", {"c": [0.0, 0.0], "max_iter": 10000, **STILL}),
    ("c = 0.25 (parabolic), max_iter 2000", {"c": [0.25, 0.0], "max_iter": 2000, **STILL}),
    ("c = 0.25 (parabolic), max_iter 10000", {"c": [0.25, 0.0], "max_iter": 10000, **STILL}),
    ("c = -0.75 (parabolic), max_iter 10000", {"c": [-0.75, 0.0], "max_iter": 10000, **STILL}),
    (
        "inside the c = 0.25 basin, max_iter 10000",
        {"c": [0.25, 0.0], "center": [0.3, 0.0], "scale": 0.05, "max_iter": 10000, **STILL},
    ),
    (
        "c = 0.25 zoomed on the Julia set, max_iter 10000",
        {"c": [0.25, 0.0], "center": [0.5, 0.0], "scale": 0.01, "max_iter": 10000, **STILL},
    ),
    ("dust (c = 0.4+0.3i), max_iter 10000", {"c": [0.4, 0.3], "max_iter": 10000, **STILL}),
    ("rotating through the set, max_iter 3000", {"c": [0.3, 0.0], "max_iter": 3000}),
]
# Frames whose cost the view's probe estimates (admission.VIEW_KERNEL_SECONDS_PER_SAMPLE_COST).
VIEW_CPU_CASES: list[tuple[str, dict[str, Any]]] = [
    ("mandelbrot, the whole set, max_iter 500", {"fractal": "mandelbrot", "max_iter": 500}),
    (
        "mandelbrot beside the 0.25 cusp, max_iter 10000",
        {"fractal": "mandelbrot", "center": [0.2505, 0.0], "scale": 1e-3, "max_iter": 10000},
    ),
    (
        "mandelbrot seahorse valley, max_iter 10000",
        {"fractal": "mandelbrot", "center": [-0.7435, 0.1314], "scale": 2e-4, "max_iter": 10000},
    ),
    (
        "zoom to 1e-30 at gaia, 400x300, max_iter 20000",
        {
            "fractal": "mandelbrot",
            "center": GAIA,
            "scale": 1.5,
            "camera": {"kind": "zoom", "zoom_to": 1e-30},
            "max_iter": 20000,
            "width": 400,
            "height": 300,
        },
    ),
    (
        "zoom to 1e-30 at flake, 400x300, max_iter 20000",
        {
            "fractal": "mandelbrot",
            "center": FLAKE,
            "scale": 1.5,
            "camera": {"kind": "zoom", "zoom_to": 1e-30},
            "max_iter": 20000,
            "width": 400,
            "height": 300,
        },
    ),
    (
        "gaia at 1e-100, 400x300, max_iter 50000",
        {
            "fractal": "mandelbrot",
            "center": GAIA,
            "scale": 1e-100,
            "max_iter": 50000,
            "width": 400,
            "height": 300,
            "frames": 3,
        },
    ),
    ("burning ship, max_iter 2000", {"fractal": "burning_ship", "max_iter": 2000}),
    ("tricorn, max_iter 2000", {"fractal": "tricorn", "max_iter": 2000}),
    ("multibrot 5, max_iter 2000", {"fractal": "multibrot", "power": 5, "max_iter": 2000}),
    ("newton, max_iter 200", {"fractal": "newton", "max_iter": 200}),
    (
        "burning ship julia, max_iter 2000",
        {"fractal": "burning_ship_julia", "c": [-0.5, -0.5], "max_iter": 2000},
    ),
    (
        "multibrot 3 julia zoomed, max_iter 5000",
        {"fractal": "multibrot_julia", "power": 3, "scale": 0.3, "max_iter": 5000},
    ),
    (
        "multibrot 8 julia, c = 0 (inside), max_iter 5000",
        {"fractal": "multibrot_julia", "power": 8, "c": [0.0, 0.0], "max_iter": 5000, **STILL},
    ),
    (
        "tricorn julia, c = -0.5 (inside), max_iter 5000",
        {"fractal": "tricorn_julia", "c": [-0.5, 0.0], "max_iter": 5000, **STILL},
    ),
    (
        "tricorn zoomed in its interior edge, max_iter 10000",
        {"fractal": "tricorn", "center": [-0.3, 0.0], "scale": 0.05, "max_iter": 10000},
    ),
]
MEMORY_CASES: list[tuple[str, dict[str, Any]]] = [
    ("800x600", {}),
    ("800x600 fire, supersample 4", {"colormap": "fire", "supersample": 4}),
    ("1920x1080 classic", {"width": 1920, "height": 1080}),
    (
        "1920x1080 ocean, supersample 2",
        {"width": 1920, "height": 1080, "colormap": "ocean", "supersample": 2},
    ),
    ("3840x2160 classic", {"width": 3840, "height": 2160}),
]
VIEW_MEMORY_CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "gaia at 1e-100, 800x600, max_iter 50000",
        {
            "fractal": "mandelbrot",
            "center": GAIA,
            "scale": 1e-100,
            "max_iter": 50000,
            "frames": 4,
        },
    ),
]
OUTPUT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("standard", {}),
    (
        "dust turning 0.3 rad a frame, 1280x720",
        {
            "c": [0.4, 0.3],
            "width": 1280,
            "height": 720,
            "path": {"kind": "rotate", "step": 0.3},
            "scale": 1.6,
        },
    ),
    (
        "fine detail, fire, 1280x720",
        {
            "c": [-0.75, 0.11],
            "width": 1280,
            "height": 720,
            "colormap": "fire",
            "path": {"kind": "rotate", "step": 0.2},
        },
    ),
    ("tiny 64x48, fast", {"width": 64, "height": 48, "path": {"kind": "rotate", "step": 0.5}}),
    (
        "dust, 800x600, 0.5 rad a frame",
        {"c": [0.3, 0.5], "scale": 2.0, "path": {"kind": "rotate", "step": 0.5}},
    ),
]


def spec_of(overrides: dict[str, Any]) -> AnimationSpec:
    values: dict[str, Any] = {"frames": FRAMES, "path": {"kind": "rotate", "step": 0.05}}
    return AnimationSpec.model_validate({**values, **overrides})


def measure_cpu(spec: AnimationSpec) -> tuple[float, int]:
    from fractal.engine import render_segment

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "segment.mp4"
        started = time.thread_time()
        info = render_segment(spec, 0, spec.frame_count, path, threads=1)
        return time.thread_time() - started, info.size


CHILD = """
import json, sys, tempfile
from fractal.engine import render_segment
from fractal.engine.frames import warm_kernels
from fractal.engine.memory import pin_mmap_threshold
from fractal.spec import AnimationSpec
def status(field):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
pin_mmap_threshold()
warm_kernels()
spec = AnimationSpec.model_validate_json(sys.argv[1])
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # resets the peak (VmHWM) to the current size
with tempfile.TemporaryDirectory() as scratch:
    render_segment(spec, 0, spec.frame_count, scratch + "/s.mp4", threads=1)
print(json.dumps({"before": before, "after": status("VmHWM")}))
"""

WORKER_IMPORTS = """
import resource
import activities.worker, activities.render, fractal.db, fractal.storage, temporalio.worker
from fractal.engine.frames import warm_kernels
warm_kernels()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def measure_memory(spec: AnimationSpec) -> int:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, spec.model_dump_json()],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout)
    return int(figures["after"] - figures["before"])


def worker_base() -> int:
    result = subprocess.run(
        [sys.executable, "-c", WORKER_IMPORTS], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-memory", action="store_true", help="no fresh-process runs")
    parser.add_argument(
        "--views-only", action="store_true", help="only the CPU cases that probe a view"
    )
    args = parser.parse_args()

    from fractal.engine.frames import warm_kernels

    warm_kernels()
    report: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "cpu": [],
        "memory": [],
        "output": [],
    }
    heading = f"{'measured':>10} {'estimate':>10} {'ratio':>7}"
    print(f"{'CPU (one chunk of ' + str(FRAMES) + ' frames)':48} {heading}")
    for name, overrides in VIEW_CPU_CASES if args.views_only else CPU_CASES + VIEW_CPU_CASES:
        spec = spec_of(overrides)
        measured, _ = measure_cpu(spec)
        estimate = admission.estimate_cost(spec, FRAMES).cpu_seconds
        ratio = measured / estimate
        report["cpu"].append(
            {"case": name, "measured_s": measured, "estimate_s": estimate, "ratio": ratio}
        )
        print(f"{name:48} {measured:9.3f}s {estimate:9.3f}s {ratio:7.2f}", flush=True)

    print(f"\n{'output bytes':48} {'measured':>10} {'estimate':>10} {'ratio':>7}")
    for name, overrides in [] if args.views_only else OUTPUT_CASES:
        spec = spec_of({"frames": 48, **overrides})
        _, size = measure_cpu(spec)
        estimate_bytes = admission.estimate_cost(spec, 48).output_bytes
        per_pixel_frame = size / (spec.pixels * spec.frame_count)
        report["output"].append(
            {
                "case": name,
                "bytes": size,
                "estimate": estimate_bytes,
                "per_pixel_frame": per_pixel_frame,
            }
        )
        print(
            f"{name:48} {size:10,d} {estimate_bytes:10,d} {size / estimate_bytes:7.2f}"
            f"  ({per_pixel_frame:.3f} B/pixel/frame)",
            flush=True,
        )

    if not args.skip_memory:
        print(f"\n{'memory of one chunk (fresh process)':48} {heading}")
        memory_cases = VIEW_MEMORY_CASES if args.views_only else MEMORY_CASES + VIEW_MEMORY_CASES
        for name, overrides in memory_cases:
            spec = spec_of({"frames": MEMORY_FRAMES, **overrides})
            measured_bytes = measure_memory(spec)
            estimate_bytes = admission.estimate_cost(spec, FRAMES).chunk_memory_bytes
            report["memory"].append(
                {"case": name, "bytes": measured_bytes, "estimate": estimate_bytes}
            )
            print(
                f"{name:48} {admission.mib(measured_bytes):>10} {admission.mib(estimate_bytes):>10}"
                f" {measured_bytes / estimate_bytes:7.2f}",
                flush=True,
            )
        base = worker_base()
        report["worker_base"] = {"bytes": base, "estimate": admission.WORKER_BASE_BYTES}
        print(
            f"{'idle worker (imports, warm kernels)':48} {admission.mib(base):>10}"
            f" {admission.mib(admission.WORKER_BASE_BYTES):>10}"
            f" {base / admission.WORKER_BASE_BYTES:7.2f}"
        )
    worst = max(item["ratio"] for item in report["cpu"])
    report["worst_cpu_ratio"] = worst
    print(f"\nworst CPU ratio {worst:.2f} (must stay below 1)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
