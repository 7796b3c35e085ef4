"""The ``fractal`` command."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from fractal.spec import AnimationSpec, Colormap, FractalKind, format_validation_error

app = typer.Typer(
    help="Fractal Animation Server: render Julia set animations to web-playable MP4.",
    no_args_is_help=True,
    add_completion=False,
)


def _points(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [point for point in value.split(";") if point.strip()]


def spec_from_options(options: dict[str, Any]) -> AnimationSpec:
    """Build a spec from CLI options; options left at None take the spec's defaults."""
    data: dict[str, Any] = {
        key: value
        for key, value in options.items()
        if value is not None and key not in {"path", "step", "points"}
    }
    path_kind = options.get("path")
    if path_kind is not None or options.get("step") is not None or options.get("points"):
        path: dict[str, Any] = {"kind": path_kind or "rotate"}
        if options.get("step") is not None:
            path["step"] = options["step"]
        if options.get("points") is not None:
            path["points"] = options["points"]
        data["path"] = path
    return AnimationSpec.model_validate(data)


@app.command()
def render(
    output: Annotated[Path, typer.Option("--output", "-o", help="MP4 file to write")] = Path(
        "julia.mp4"
    ),
    fractal: Annotated[FractalKind | None, typer.Option(help="Which fractal")] = None,
    c: Annotated[str | None, typer.Option(help='Start value of c as "re,im" (-0.8,-0.18)')] = None,
    path: Annotated[str | None, typer.Option(help="How c moves: rotate, line or keyframes")] = None,
    step: Annotated[float | None, typer.Option(help="rotate: radians per frame (0.01)")] = None,
    points: Annotated[
        str | None,
        typer.Option(help='line/keyframes: c values after the start, "re,im;re,im;..."'),
    ] = None,
    width: Annotated[int | None, typer.Option(help="Even, 16..3840 (800)")] = None,
    height: Annotated[int | None, typer.Option(help="Even, 16..2160 (600)")] = None,
    fps: Annotated[int | None, typer.Option(help="1..60 (24)")] = None,
    frames: Annotated[int | None, typer.Option(help="1..3600 (120)")] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds, instead of --frames")] = None,
    max_iter: Annotated[int | None, typer.Option(help="1..10000 (500)")] = None,
    center: Annotated[str | None, typer.Option(help='View centre "re,im" (0,0)')] = None,
    scale: Annotated[float | None, typer.Option(help="Half-height of the view (1.2)")] = None,
    supersample: Annotated[int | None, typer.Option(help="1..4 samples per axis (1)")] = None,
    colormap: Annotated[Colormap | None, typer.Option(help="Colouring (classic)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Chunks rendered at once (default: one per core)")
    ] = None,
    chunk_frames: Annotated[
        int | None, typer.Option(help="Frames per chunk (default: one second)")
    ] = None,
) -> None:
    """Render an animation locally, no services needed."""
    options = {
        "fractal": fractal, "c": c, "path": path, "step": step, "points": _points(points),
        "width": width, "height": height, "fps": fps, "frames": frames, "duration": duration,
        "max_iter": max_iter, "center": center, "scale": scale, "supersample": supersample,
        "colormap": colormap,
    }  # fmt: skip
    try:
        spec = spec_from_options(options)
    except ValidationError as error:
        typer.echo(f"invalid animation spec:\n{format_validation_error(error)}", err=True)
        raise typer.Exit(code=2) from None

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from activities.render.local import render_animation

    started = time.perf_counter()
    lock = threading.Lock()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task("rendering", total=spec.frame_count)

        def frame_done(_: int) -> None:
            with lock:
                progress.advance(task)

        info = render_animation(
            spec, output, workers=workers, chunk_frames=chunk_frames, on_frame=frame_done
        )
    elapsed = time.perf_counter() - started
    typer.echo(
        f"wrote {output} ({info.frames} frames, {float(info.duration):.3f} s, "
        f"{spec.width}x{spec.height}, {info.size / 1e6:.2f} MB) in {elapsed:.2f} s"
    )


@app.command()
def warmup() -> None:
    """Compile (or load from cache) the Numba kernels once, before parallel work starts."""
    from activities.render.frames import FrameRenderer

    started = time.perf_counter()
    for colormap in Colormap:
        FrameRenderer(
            AnimationSpec(width=16, height=16, frames=1, colormap=colormap, supersample=2)
        ).render(0)
    typer.echo(f"kernels ready in {time.perf_counter() - started:.2f} s")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
