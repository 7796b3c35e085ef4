"""The ``fractal`` command."""

from __future__ import annotations

import json
import os
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


def spec_from_options(options: dict[str, Any], base: dict[str, Any] | None = None) -> AnimationSpec:
    """Build a spec from CLI options over ``base``; options left at None take the base's
    values, then the spec's defaults."""
    data: dict[str, Any] = dict(base or {})
    data |= {
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


def check_output_path(output: Path) -> None:
    """Refuse an output the MP4 could not be written to, before any work is done."""
    folder = output.parent
    if output.is_dir():
        problem = f"{output} is a directory"
    elif not folder.is_dir():
        problem = f"folder {folder} does not exist"
    elif not os.access(folder, os.W_OK):
        problem = f"folder {folder} is not writable"
    else:
        return
    typer.echo(f"cannot write the video: {problem}", err=True)
    raise typer.Exit(code=2)


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
    check_output_path(output)

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
    from activities.render.frames import warm_kernels

    started = time.perf_counter()
    warm_kernels()
    typer.echo(f"kernels ready in {time.perf_counter() - started:.2f} s")


# -- the service ------------------------------------------------------------------------


@app.command()
def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where all state lives (FRACTAL_DATA_DIR, ./data)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="API port (FRACTAL_API_PORT, 8000)")] = None,
    temporal_port: Annotated[int, typer.Option(help="Embedded Temporal gRPC port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Embedded Temporal Web UI port")] = 8233,
) -> None:
    """Run the whole service on this machine: Temporal, Postgres, Redis, API and a worker."""
    from fractal.settings import Settings
    from fractal.up import UpOptions, run_stack

    settings = Settings()
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if port is not None:
        overrides["api_port"] = port
    settings = settings.model_copy(update=overrides)
    from fractal.embedded import EmbeddedServerError

    try:
        run_stack(settings, UpOptions(temporal_port, ui_port), _serve_api, echo=typer.echo)
    except EmbeddedServerError as error:
        typer.echo(f"error: {error} (logs under {settings.data_dir})", err=True)
        raise typer.Exit(code=1) from None


def _serve_api(settings: Any) -> None:
    import uvicorn

    from api.main import create_app

    try:
        application = create_app(settings)
    except RuntimeError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    uvicorn.run(
        application, host=settings.api_host, port=settings.api_port, proxy_headers=True,
        log_level="info",
    )  # fmt: skip


@app.command()
def api() -> None:
    """Serve the REST API (production process; needs FRACTAL_JWT_SECRET and the services)."""
    from fractal.settings import Settings

    _serve_api(Settings())


@app.command()
def worker() -> None:
    """Run a Temporal worker: the render workflow and activities, one slot per core."""
    from activities.worker import main as worker_main

    worker_main()


@app.command()
def migrate() -> None:
    """Apply the database migrations (FRACTAL_DATABASE_URL)."""
    from fractal.migrate import upgrade_database
    from fractal.settings import Settings

    settings = Settings()
    if not settings.database_url:
        typer.echo("error: FRACTAL_DATABASE_URL is not set", err=True)
        raise typer.Exit(code=2)
    upgrade_database(settings.database_url)
    typer.echo("database is up to date")


# -- the client -------------------------------------------------------------------------


@app.command()
def login(
    username: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    api_url: Annotated[str, typer.Option("--api", help="API base URL")] = "http://127.0.0.1:8000",
) -> None:
    """Log in and keep the token in your config directory (mode 0600)."""
    from fractal.client import log_in, save_credentials

    try:
        token, expires_in = log_in(api_url, username, password)
    except (PermissionError, OSError) as error:
        typer.echo(f"login failed: {error}", err=True)
        raise typer.Exit(code=1) from None
    path = save_credentials(api_url, token, expires_in)
    typer.echo(f"logged in; token saved to {path}")


@app.command()
def submit(
    c: Annotated[str | None, typer.Option(help='Start value of c as "re,im"')] = None,
    width: Annotated[int | None, typer.Option()] = None,
    height: Annotated[int | None, typer.Option()] = None,
    fps: Annotated[int | None, typer.Option()] = None,
    frames: Annotated[int | None, typer.Option()] = None,
    duration: Annotated[float | None, typer.Option()] = None,
    max_iter: Annotated[int | None, typer.Option()] = None,
    colormap: Annotated[Colormap | None, typer.Option()] = None,
    spec_json: Annotated[
        str | None,
        typer.Option(
            "--spec",
            help='Any spec fields as a JSON object, e.g. \'{"path": {"kind": "line", '
            '"points": [[0.3, 0.5]]}, "supersample": 2}\'; the flags above override it',
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait and show progress")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Download the MP4 here (implies --wait)")
    ] = None,
) -> None:
    """Submit an animation to the server you logged in to."""
    from fractal.client import ApiClient, load_credentials

    options = {
        "c": c, "width": width, "height": height, "fps": fps, "frames": frames,
        "duration": duration, "max_iter": max_iter, "colormap": colormap,
    }  # fmt: skip
    try:
        base = json.loads(spec_json) if spec_json else {}
        if not isinstance(base, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        typer.echo(f"--spec: {error}", err=True)
        raise typer.Exit(code=2) from None
    try:
        spec = spec_from_options(options, base)
        credentials = load_credentials()
    except ValidationError as error:
        typer.echo(f"invalid animation spec:\n{format_validation_error(error)}", err=True)
        raise typer.Exit(code=2) from None
    except LookupError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=1) from None
    if output is not None:
        check_output_path(output)
    client = ApiClient(credentials["api"], credentials["access_token"])
    body = spec.model_dump(mode="json", exclude_unset=True)
    try:
        task = client.submit(body)
    except RuntimeError as error:
        typer.echo(f"submission refused: {error}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"task {task['id']} {task['state']}")
    if not (wait or output):
        return
    task = _follow(client, task)
    if task["state"] != "succeeded":
        typer.echo(f"task {task['state']}: {task.get('error') or ''}", err=True)
        raise typer.Exit(code=1)
    if output is not None:
        size = client.download(task["video_url"], output)
        typer.echo(f"wrote {output} ({size / 1e6:.2f} MB)")
    else:
        typer.echo(task["video_url"])


def _follow(client: Any, task: dict[str, Any]) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(),
    ) as progress:  # fmt: skip
        bar = progress.add_task(task["state"], total=task["progress"]["frames_total"])
        while task["state"] in ("queued", "running"):
            time.sleep(0.5)
            task = client.task(task["id"])
            progress.update(
                bar, completed=task["progress"]["frames_done"], description=task["state"]
            )
    return task


def main() -> None:
    app()


if __name__ == "__main__":
    main()
