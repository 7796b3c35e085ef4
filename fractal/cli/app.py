"""The Typer application every command module registers with."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from fractal.spec import AnimationSpec, format_validation_error

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

app = typer.Typer(
    help="Fractal Animation Server: render fractal animations to web-playable MP4.",
    no_args_is_help=True,
    add_completion=False,
)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr; the exit to raise."""
    typer.echo(message, err=True)
    return typer.Exit(code=code)


def validated_spec(fields: dict[str, object]) -> AnimationSpec:
    """The spec, or exit 2 with one line per invalid field."""
    try:
        return AnimationSpec.model_validate(fields)
    except ValidationError as error:
        raise fail(f"invalid animation spec:\n{format_validation_error(error)}", 2) from None


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
    raise fail(f"cannot write the video: {problem}", 2)


class FrameProgress:
    """A terminal progress bar of frames; ``advance`` may be called from several threads."""

    def __init__(self, progress: Progress, bar: TaskID) -> None:
        self._progress = progress
        self._bar = bar
        self._lock = threading.Lock()

    def advance(self, frames: int = 1) -> None:
        with self._lock:
            self._progress.advance(self._bar, frames)

    def show(self, frames_done: int, description: str) -> None:
        with self._lock:
            self._progress.update(self._bar, completed=frames_done, description=description)


@contextlib.contextmanager
def frame_progress(description: str, frames: int) -> Iterator[FrameProgress]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ) as progress:
        yield FrameProgress(progress, progress.add_task(description, total=frames))
