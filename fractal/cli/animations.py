"""Your animations on the server: list, show, watch, download, cancel, delete.

An animation is named by its id or any unique beginning of it (as ``fractal ls`` shows).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from fractal.cli.account import logged_in, talking_to
from fractal.cli.app import app, check_output_path, fail, frame_progress
from fractal.cli.client import ApiClient, ApiError, TaskJson, state_label
from fractal.states import ACTIVE_STATES, TaskState

IdArgument = Annotated[str, typer.Argument(help="animation id, or a unique start of it")]
JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON")]
SHORT_ID = 8


def resolve(client: ApiClient, given: str) -> str:
    """The full id of the user's animation that ``given`` names."""
    try:
        return str(uuid.UUID(given))
    except ValueError:
        pass
    prefix = given.lower()
    if len(prefix) < 4:
        raise fail(f"{given!r}: give at least 4 characters of the id", 2)
    matches = [task["id"] for task in client.all_tasks() if task["id"].startswith(prefix)]
    if not matches:
        raise fail(f"no animation of yours has an id starting with {given!r}")
    if len(matches) > 1:
        raise fail(f"{given!r} is ambiguous: {', '.join(m[:13] for m in matches)}")
    return str(matches[0])


def _progress(task: TaskJson) -> str:
    progress = task["progress"]
    text = f"{progress['frames_done']}/{progress['frames_total']} ({progress['percent']:g}%)"
    if progress.get("eta_seconds") is not None:
        text += f", {progress['eta_seconds']:.0f} s left"
    return text


def _spec_summary(spec: dict[str, Any]) -> str:
    c = spec.get("c") or {}
    path = (spec.get("path") or {}).get("kind", "rotate")
    return (
        f"{spec.get('fractal', 'julia')} c={c.get('re')},{c.get('im')} {path} "
        f"{spec.get('width')}x{spec.get('height')} {spec.get('frames')}f@{spec.get('fps')}"
    )


@app.command("ls")
def list_animations(
    state: Annotated[TaskState | None, typer.Option(help="only animations in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="how many, newest first")] = 20,
    every: Annotated[bool, typer.Option("--all", help="all of them, page after page")] = False,
    as_json: JsonOption = False,
) -> None:
    """Your animations, newest first."""
    client, api = logged_in()
    with talking_to(api, "cannot list"):
        if every:
            tasks = list(client.all_tasks(state.value if state else None))
            more = False
        else:
            page = client.tasks(state.value if state else None, limit=limit)
            tasks, more = page["items"], page["next_cursor"] is not None
    if as_json:
        typer.echo(json.dumps(tasks, indent=2))
        return
    if not tasks:
        typer.echo("no animations" + (f" {state.value}" if state else ""))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("ID", "STATE", "FRAMES", "CREATED", "SIZE", "SPEC"):
        table.add_column(column, no_wrap=column != "SPEC")
    for task in tasks:
        size = f"{task['video_size'] / 1e6:.1f} MB" if task.get("video_size") else ""
        table.add_row(
            task["id"][:SHORT_ID],
            state_label(task, short=True),
            _progress(task),
            task["created_at"][:19].replace("T", " "),
            size,
            _spec_summary(task["spec"]),
        )
    Console().print(table)
    if more:
        typer.echo(f"(more: fractal ls --limit {min(100, limit * 2)} or --all)")


@app.command()
def show(task_id: IdArgument, as_json: JsonOption = False) -> None:
    """One animation: state, progress, timings, error, links and spec."""
    client, api = logged_in()
    with talking_to(api, "cannot show it"):
        task = client.task(resolve(client, task_id))
    if as_json:
        typer.echo(json.dumps(task, indent=2))
        return
    lines = [
        ("id", task["id"]),
        ("state", state_label(task)),
        ("frames", _progress(task)),
        ("created", task["created_at"]),
        ("started", task.get("started_at") or "-"),
        ("finished", task.get("finished_at") or "-"),
    ]
    if task.get("error"):
        lines.append(("error", task["error"]))
    if task.get("video_url"):
        lines.append(("video", f"{task['video_size'] / 1e6:.2f} MB, {task['video_url']}"))
    if task.get("poster_url"):
        lines.append(("poster", task["poster_url"]))
    for name, value in lines:
        typer.echo(f"{name:<9} {value}")
    typer.echo("spec      " + json.dumps(task["spec"]))


@app.command()
def watch(task_id: IdArgument) -> None:
    """Follow an animation's progress live until it finishes (exit 1 unless it succeeded)."""
    client, api = logged_in()
    with talking_to(api, "cannot watch it"):
        full_id = resolve(client, task_id)
        task = client.task(full_id)
        with frame_progress(state_label(task), task["progress"]["frames_total"]) as progress:

            def show_update(update: TaskJson) -> None:
                progress.show(update["progress"]["frames_done"], state_label(update))

            task = client.follow(full_id, show_update)
    if task["state"] != TaskState.succeeded:
        raise fail(f"animation {task['state']}" + (f": {task['error']}" if task["error"] else ""))
    typer.echo(f"succeeded: fractal download {full_id[:SHORT_ID]}")


@app.command()
def download(
    task_id: IdArgument,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="where (default: fractal-<id>.mp4)")
    ] = None,
) -> None:
    """Download a finished animation's MP4."""
    client, api = logged_in()
    with talking_to(api, "cannot download it"):
        task = client.task(resolve(client, task_id))
        if task["state"] != TaskState.succeeded:
            hint = f"; follow it with fractal watch {task['id'][:SHORT_ID]}"
            raise fail(
                f"animation is {task['state']}, there is no video"
                + (hint if task["state"] in ACTIVE_STATES else "")
            )
        target = output or Path(f"fractal-{task['id'][:SHORT_ID]}.mp4")
        check_output_path(target)
        size = client.download(task["video_url"], target)
    typer.echo(f"wrote {target} ({size / 1e6:.2f} MB)")


@app.command()
def cancel(task_id: IdArgument) -> None:
    """Stop a queued or running animation (it stays listed as canceled); one that has
    finished meanwhile is left as it is."""
    client, api = logged_in()
    with talking_to(api, "cannot cancel it"):
        task = client.task(resolve(client, task_id))
        short = task["id"][:SHORT_ID]
        if task["state"] not in ACTIVE_STATES:
            raise fail(f"animation already {task['state']}; delete it with fractal rm {short}")
        try:
            task = client.cancel(task["id"])
        except ApiError as error:
            if error.status_code != 409:
                raise
            # It finished between the two requests: a cancel never deletes a video.
            raise fail(f"{error.detail}; delete it with fractal rm {short}") from None
    if task["state"] == TaskState.canceled:
        typer.echo(f"canceled {short}")
    else:
        typer.echo(f"cancel requested for {short}")


@app.command("rm")
def remove(
    task_id: IdArgument,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="cancel it first if it is still rendering")
    ] = False,
) -> None:
    """Delete a finished animation and its video."""
    client, api = logged_in()
    with talking_to(api, "cannot delete it"):
        task = client.task(resolve(client, task_id))
        short = task["id"][:SHORT_ID]
        if task["state"] in ACTIVE_STATES:
            if not force:
                raise fail(
                    f"animation is {task['state']}: cancel it (fractal cancel {short}) or "
                    f"use fractal rm --force {short}"
                )
            client.delete(task["id"])
            client.wait(task["id"], timeout=120)
        client.delete(task["id"])
    typer.echo(f"deleted {short}")
