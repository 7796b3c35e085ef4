"""The CLI for people, against the running stack: sign up, log in without the password
on the command line, list, show, watch (live events), download, cancel, delete, and a
clear message for every refusal."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from fractal.cli import app
from fractal.cli.client import credentials_path
from tests.stack import Stack

SMALL = '{"width": 64, "height": 48, "frames": 12, "max_iter": 100}'
LONG = '{"width": 320, "height": 240, "frames": 600, "max_iter": 3000}'


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("FRACTAL_PASSWORD", raising=False)
    monkeypatch.delenv("FRACTAL_API", raising=False)
    return CliRunner()


def submitted_id(runner: CliRunner, spec: str) -> str:
    result = runner.invoke(app, ["submit", "--spec", spec])
    assert result.exit_code == 0, result.output
    return result.output.split()[1]


def test_an_account_from_the_terminal(local_stack: Stack, runner: CliRunner) -> None:
    api = ["--api", local_stack.base_url]
    name = f"person-{uuid.uuid4().hex[:8]}"
    password = "a-long-secret-1"

    # Sign up: the password twice, typed without echo; logged in at once.
    result = runner.invoke(app, ["signup", *api, "--username", name], input=f"{password}\n" * 2)
    assert result.exit_code == 0, result.output
    assert password not in result.output
    assert f"logged in to {local_stack.base_url} as {name}" in result.output
    assert stat.S_IMODE(credentials_path().stat().st_mode) == 0o600
    whoami = runner.invoke(app, ["whoami"])
    assert whoami.exit_code == 0 and whoami.output.startswith(f"{name} at {local_stack.base_url}")

    taken = runner.invoke(
        app, ["signup", *api, "--username", name, "--password-stdin"], input="x" * 9
    )
    assert taken.exit_code == 1 and "username is taken" in taken.output

    assert runner.invoke(app, ["logout"]).output.strip() == "logged out"
    assert runner.invoke(app, ["logout"]).output.strip() == "not logged in"
    refused = runner.invoke(app, ["whoami"])
    assert refused.exit_code == 1 and "not logged in: run `fractal login`" in refused.output

    # Log in: prompted without echo, from standard input, or from FRACTAL_PASSWORD. The
    # API is remembered from the last login.
    prompted = runner.invoke(app, ["login", *api, "--username", name], input=f"{password}\n")
    assert prompted.exit_code == 0 and password not in prompted.output
    piped = runner.invoke(app, ["login", "--username", name, "--password-stdin"], input=password)
    assert piped.exit_code == 0, piped.output
    from_env = runner.invoke(app, ["login", "--username", name], env={"FRACTAL_PASSWORD": password})
    assert from_env.exit_code == 0, from_env.output
    wrong = runner.invoke(app, ["login", "--username", name, "--password-stdin"], input="nope")
    assert wrong.exit_code == 1 and "wrong username or password" in wrong.output
    legacy = runner.invoke(app, ["login", "--username", name, "--password", password])
    assert legacy.exit_code == 0 and "shell history" in legacy.output

    # A token the server no longer accepts: say so, and what to do.
    saved = json.loads(credentials_path().read_text())
    credentials_path().write_text(json.dumps({**saved, "access_token": "forged"}))
    expired = runner.invoke(app, ["whoami"])
    assert expired.exit_code == 1
    assert "invalid or expired token (log in again: fractal login)" in expired.output

    nowhere = runner.invoke(
        app,
        ["login", "--api", "http://127.0.0.1:9", "--username", name, "--password-stdin"],
        input=password,
    )
    assert nowhere.exit_code == 1 and "cannot reach the API at http://127.0.0.1:9" in nowhere.output


def test_animations_from_the_terminal(
    local_stack: Stack, runner: CliRunner, tmp_path: Path
) -> None:
    name = f"lister-{uuid.uuid4().hex[:8]}"
    result = runner.invoke(
        app,
        ["signup", "--api", local_stack.base_url, "--username", name, "--password-stdin"],
        input="a-long-secret-2",
    )
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["ls"]).output.strip() == "no animations"

    task_id = submitted_id(runner, SMALL)
    short = task_id[:8]

    # watch: a live progress bar fed by the event stream, until it succeeded.
    watched = runner.invoke(app, ["watch", short])
    assert watched.exit_code == 0, watched.output
    assert f"succeeded: fractal download {short}" in watched.output

    listed = runner.invoke(app, ["ls"])
    assert listed.exit_code == 0 and short in listed.output and "succeeded" in listed.output
    assert "12/12 (100%)" in listed.output
    as_json = json.loads(runner.invoke(app, ["ls", "--json", "--state", "succeeded"]).output)
    assert [task["id"] for task in as_json] == [task_id]

    shown = runner.invoke(app, ["show", short])
    assert shown.exit_code == 0 and f"id        {task_id}" in shown.output
    assert "poster" in shown.output and '"frames": 12' in shown.output

    output = tmp_path / "mine.mp4"
    downloaded = runner.invoke(app, ["download", short, "-o", str(output)])
    assert downloaded.exit_code == 0, downloaded.output
    with av.open(str(output)) as container:
        assert container.streams.video[0].frames == 12

    finished = runner.invoke(app, ["cancel", short])
    assert finished.exit_code == 1 and f"delete it with fractal rm {short}" in finished.output

    # A long one: cancelled while it renders, then deleted; rm --force does both at once.
    long_id = submitted_id(runner, LONG)
    running = runner.invoke(app, ["rm", long_id])
    assert running.exit_code == 1 and "cancel it (fractal cancel" in running.output
    no_video = runner.invoke(app, ["download", long_id])
    assert no_video.exit_code == 1 and "there is no video" in no_video.output
    assert runner.invoke(app, ["cancel", long_id]).exit_code == 0
    stopped = runner.invoke(app, ["watch", long_id])
    assert stopped.exit_code == 1 and "animation canceled" in stopped.output
    assert runner.invoke(app, ["rm", long_id]).exit_code == 0
    forced = submitted_id(runner, LONG)
    assert runner.invoke(app, ["rm", "--force", forced]).exit_code == 0

    deleted = runner.invoke(app, ["rm", short])
    assert deleted.exit_code == 0 and f"deleted {short}" in deleted.output
    gone = runner.invoke(app, ["show", task_id])
    assert gone.exit_code == 1 and "not found" in gone.output
    unknown = runner.invoke(app, ["show", "ffffffff"])
    assert unknown.exit_code == 1 and "no animation of yours" in unknown.output
    assert runner.invoke(app, ["show", "ab"]).exit_code == 2

    # The server's refusals, in its words: the admission limit and a field's range.
    huge = '{"width": 3840, "height": 2160, "frames": 3600, "max_iter": 10000}'
    too_big = runner.invoke(app, ["submit", "--spec", huge])
    assert too_big.exit_code == 1 and "animation too costly" in too_big.output
