"""Render-engine benchmark: ``python -m bench.engine``.

Measures, side by side in one run on the standard animation (800x600, 120 frames,
max_iter 500, c rotating from -0.8-0.18i):
- the project's kernel against a naive scalar ``prange`` Numba kernel (both on all cores),
- the whole ``fractal render`` (render + encode + join, a subprocess) against a naive
  pipeline (naive kernel, NumPy colouring, one default libx264 ``veryfast`` encode),
- the quality of ``fractal render``'s output (worst-frame PSNR),
- the peak memory of ``fractal render`` for 120 and 1200 frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
from numba import njit, prange

from fractal.engine import FrameRenderer, default_workers
from fractal.spec import AnimationSpec


@njit(parallel=True, nogil=True, cache=True)
def naive_escape_counts(xs, ys, cr, ci, max_iter, out):  # type: ignore[no-untyped-def]
    """The baseline: one pixel at a time, ``while ... break``, rows spread over cores."""
    for j in prange(ys.size):
        for i in range(xs.size):
            zr = xs[i]
            zi = ys[j]
            n = 0
            while n < max_iter:
                x2 = zr * zr
                y2 = zi * zi
                if x2 + y2 > 4.0:
                    break
                zi = 2.0 * zr * zi + ci
                zr = x2 - y2 + cr
                n += 1
            out[j, i] = n


def naive_kernel(spec: AnimationSpec) -> tuple[float, int]:
    renderer = FrameRenderer(spec)  # only for its pixel axes
    out = np.empty((spec.height, spec.width), np.int32)
    naive_escape_counts(renderer.grid.xs, renderer.grid.ys, 0.0, 0.0, 1, out)  # compile / load
    iterations = 0
    started = time.perf_counter()
    for frame in range(spec.frame_count):
        c = spec.c_at(frame)
        naive_escape_counts(renderer.grid.xs, renderer.grid.ys, c.real, c.imag, spec.max_iter, out)
    elapsed = time.perf_counter() - started
    for frame in range(spec.frame_count):  # count outside the timing
        c = spec.c_at(frame)
        naive_escape_counts(renderer.grid.xs, renderer.grid.ys, c.real, c.imag, spec.max_iter, out)
        iterations += int(out.sum())
    return elapsed, iterations


def project_kernel(spec: AnimationSpec, workers: int) -> tuple[float, int]:
    FrameRenderer(spec).escape_counts(0)  # load the cached kernels

    def run(frames: range) -> int:
        renderer = FrameRenderer(spec)
        return sum(int(renderer.escape_counts(f).sum()) for f in frames)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        parts = [range(w, spec.frame_count, workers) for w in range(workers)]
        iterations = sum(pool.map(run, parts))
    return time.perf_counter() - started, iterations


def naive_pipeline(spec: AnimationSpec, output: Path) -> float:
    """Naive kernel + NumPy histogram colouring + one default libx264 veryfast encode."""
    renderer = FrameRenderer(spec)
    counts = np.empty((spec.height, spec.width), np.int32)
    started = time.perf_counter()
    with av.open(str(output), mode="w") as container:
        stream = container.add_stream("libx264", rate=spec.fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        for frame_number in range(spec.frame_count):
            c = spec.c_at(frame_number)
            naive_escape_counts(
                renderer.grid.xs, renderer.grid.ys, c.real, c.imag, spec.max_iter, counts
            )
            escaped = counts[counts < spec.max_iter]
            hist = np.bincount(escaped, minlength=spec.max_iter)[: spec.max_iter]
            cdf = np.cumsum(hist) / max(escaped.size, 1)
            value = (255.0 ** cdf[np.minimum(counts, spec.max_iter - 1)]).astype(np.uint8)
            rgb = np.stack([value, value, np.full_like(value, 255)], axis=2)
            rgb[counts == spec.max_iter] = 0
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = frame_number
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return time.perf_counter() - started


def fractal_render(frames: int, output: Path) -> dict[str, float]:
    """Run ``fractal render`` in a fresh process; wall time and that process's peak RSS."""
    code = (
        "import resource, sys, time; from typer.testing import CliRunner; "
        "from fractal.cli import app; t = time.perf_counter(); "
        f"r = CliRunner().invoke(app, ['render', '--frames', '{frames}', '-o', {str(output)!r}]); "
        "assert r.exit_code == 0, r.output; "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed, peak_kib = out.stdout.split()[-2:]
    return {"seconds": float(elapsed), "peak_mib": int(peak_kib) / 1024}


def _render_chunk(args: tuple[AnimationSpec, int, int, str]) -> None:
    from fractal.engine import render_segment

    spec, first, stop, path = args
    render_segment(spec, first, stop, path)


def process_pool_render(spec: AnimationSpec, workers: int, folder: Path) -> float:
    """The alternative to threads: the same chunks in worker processes (fresh ``spawn``
    interpreters, as a fork-unsafe threading layer would require), then the same join."""
    import multiprocessing

    from fractal.chunks import plan_render_chunks
    from fractal.engine import concat_segments

    # The chunks `fractal render` would render: cut by estimated cost, as many as a
    # multiple of the workers.
    chunks = plan_render_chunks(spec, spec.fps, multiple_of=workers)
    paths = [str(folder / f"proc-{chunk.index}.mp4") for chunk in chunks]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(
            _render_chunk,
            [
                (spec, chunk.first_frame, chunk.stop_frame, path)
                for chunk, path in zip(chunks, paths, strict=True)
            ],
        )
    concat_segments(paths, folder / "proc.mp4")
    return time.perf_counter() - started


def worst_psnr(spec: AnimationSpec, path: Path) -> float:
    from fractal.engine.quality import psnr_yuv

    renderer = FrameRenderer(spec)
    with av.open(str(path)) as container:
        return min(
            psnr_yuv(frame, renderer.render(index))
            for index, frame in enumerate(container.decode(video=0))
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-memory", action="store_true", help="skip the 1200-frame run")
    args = parser.parse_args()
    spec = AnimationSpec()
    workers = default_workers()
    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "workers": workers,
    }
    # Best of three: the figures are for the code, not for whatever else the machine runs.
    naive_s, naive_iter = min(naive_kernel(spec) for _ in range(3))
    ours_s, ours_iter = min(project_kernel(spec, workers) for _ in range(3))
    assert naive_iter == ours_iter, "kernels disagree"
    results["kernel"] = {
        "iterations": naive_iter,
        "naive_s": round(naive_s, 3),
        "naive_giter_s": round(naive_iter / naive_s / 1e9, 2),
        "project_s": round(ours_s, 3),
        "project_giter_s": round(ours_iter / ours_s / 1e9, 2),
        "speedup": round(naive_s / ours_s, 2),
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        pipeline_s = min(naive_pipeline(spec, folder / "naive.mp4") for _ in range(3))
        render = min(
            (fractal_render(spec.frame_count, folder / "julia.mp4") for _ in range(3)),
            key=lambda run: run["seconds"],
        )
        results["pipeline"] = {
            "naive_pipeline_s": round(pipeline_s, 3),
            "fractal_render_s": round(render["seconds"], 3),
            "ratio": round(render["seconds"] / pipeline_s, 2),
            "same_chunks_in_process_pool_s": round(
                min(process_pool_render(spec, workers, folder) for _ in range(3)), 3
            ),
            "worst_frame_psnr_db": round(worst_psnr(spec, folder / "julia.mp4"), 2),
            "naive_pipeline_psnr_db": round(worst_psnr(spec, folder / "naive.mp4"), 2),
            "mp4_mb": round((folder / "julia.mp4").stat().st_size / 1e6, 2),
        }
        memory = {"frames_120_peak_mib": round(render["peak_mib"], 1)}
        if not args.skip_memory:
            long = fractal_render(1200, folder / "long.mp4")
            memory["frames_1200_peak_mib"] = round(long["peak_mib"], 1)
            memory["frames_1200_s"] = round(long["seconds"], 2)
        results["memory"] = memory
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
