"""Submit an animation to the server you logged in to, and follow it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fractal.cli.app import app, check_output_path, fail, frame_progress, validated_spec
from fractal.cli.client import ApiClient, ApiError, TaskJson, load_credentials, state_label
from fractal.cli.spec_options import merge_spec_fields, spec_options


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise fail(f"--spec: {error}", 2) from None
    return value


@app.command()
@spec_options
def submit(
    spec_fields: dict[str, Any],
    spec_json: Annotated[
        str | None,
        typer.Option(
            "--spec",
            help='Spec fields as a JSON object, e.g. \'{"path": {"kind": "line", '
            '"points": [[0.3, 0.5]]}}\'; the other options override it',
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait and show progress")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Download the MP4 here (implies --wait)")
    ] = None,
) -> None:
    """Submit an animation to the server you logged in to."""
    spec = validated_spec(merge_spec_fields(_json_object(spec_json), spec_fields))
    try:
        credentials = load_credentials()
    except LookupError as error:
        raise fail(str(error)) from None
    if output is not None:
        check_output_path(output)
    client = ApiClient(credentials["api"], credentials["access_token"])
    try:
        task = client.submit(spec.model_dump(mode="json", exclude_unset=True))
    except ApiError as error:
        raise fail(f"submission refused: {error.explain()}") from None
    typer.echo(f"task {task['id']} {task['state']}")
    if not (wait or output):
        return
    task = _follow(client, task)
    if task["state"] != "succeeded":
        raise fail(f"task {task['state']}: {task.get('error') or ''}")
    if output is not None:
        size = client.download(task["video_url"], output)
        typer.echo(f"wrote {output} ({size / 1e6:.2f} MB)")
    else:
        typer.echo(task["video_url"])


def _follow(client: ApiClient, task: TaskJson) -> TaskJson:
    with frame_progress(state_label(task), task["progress"]["frames_total"]) as progress:

        def show(update: TaskJson) -> None:
            progress.show(update["progress"]["frames_done"], state_label(update))

        return client.wait(task["id"], on_update=show)
