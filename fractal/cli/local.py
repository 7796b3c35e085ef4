"""Commands that need no service: render an animation here, warm the kernel cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from fractal.cli.app import app, check_output_path, frame_progress, validated_spec
from fractal.cli.spec_options import spec_options


@app.command()
@spec_options
def render(
    spec_fields: dict[str, Any],
    output: Annotated[Path, typer.Option("--output", "-o", help="MP4 file to write")] = Path(
        "julia.mp4"
    ),
    workers: Annotated[
        int | None, typer.Option(help="Chunks rendered at once (default: one per core)")
    ] = None,
    chunk_frames: Annotated[
        int | None, typer.Option(help="Frames per chunk (default: one second)")
    ] = None,
) -> None:
    """Render an animation on this machine, no services needed."""
    spec = validated_spec(spec_fields)
    check_output_path(output)

    from fractal.engine import render_animation

    started = time.perf_counter()
    with frame_progress("rendering", spec.frame_count) as progress:
        info = render_animation(
            spec,
            output,
            workers=workers,
            chunk_frames=chunk_frames,
            on_frame=lambda _: progress.advance(),
        )
    elapsed = time.perf_counter() - started
    typer.echo(
        f"wrote {output} ({info.frames} frames, {float(info.duration):.3f} s, "
        f"{spec.width}x{spec.height}, {info.size / 1e6:.2f} MB) in {elapsed:.2f} s"
    )


@app.command()
def warmup() -> None:
    """Compile (or load from cache) the Numba kernels once, before parallel work starts."""
    from fractal.engine import warm_kernels

    started = time.perf_counter()
    warm_kernels()
    typer.echo(f"kernels ready in {time.perf_counter() - started:.2f} s")
