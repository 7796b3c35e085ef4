"""`fractal login` and `fractal submit --wait -o` against the running stack."""

from __future__ import annotations

import stat
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from fractal.cli import app
from tests.stack import Stack


def test_login_and_submit(local_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    runner = CliRunner()
    with local_stack.client() as client:
        body = {"username": "cli-user", "password": "cli-password"}
        assert client.post("/v1/auth/signup", json=body).status_code == 201

    wrong = runner.invoke(
        app,
        ["login", "--api", local_stack.base_url, "--username", "cli-user", "--password", "nope"],
    )
    assert wrong.exit_code == 1

    result = runner.invoke(
        app,
        [
            "login",
            "--api",
            local_stack.base_url,
            "--username",
            "cli-user",
            "--password",
            "cli-password",
        ],
    )
    assert result.exit_code == 0, result.output
    credentials = tmp_path / "config" / "fractal" / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600

    output = tmp_path / "julia.mp4"
    result = runner.invoke(
        app,
        [
            "submit",
            "--c=-0.8,-0.18",
            "--width",
            "64",
            "--height",
            "48",
            "--frames",
            "12",
            "--wait",
            "-o",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    with av.open(str(output)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12

    # Any spec field through --spec, flags on top; a bad --spec is refused before sending.
    output = tmp_path / "line.mp4"
    spec = '{"path": {"kind": "line", "points": [[0.3, 0.5]]}, "width": 640, "frames": 6}'
    result = runner.invoke(
        app, ["submit", "--spec", spec, "--width", "48", "--height", "32", "-o", str(output)]
    )
    assert result.exit_code == 0, result.output
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.frames) == (48, 32, 6)
    refused = runner.invoke(app, ["submit", "--spec", "[1, 2]"])
    assert refused.exit_code == 2 and "--spec: not a JSON object" in refused.output
    refused = runner.invoke(app, ["submit", "--spec", '{"path": {"kind": "spiral"}}'])
    assert refused.exit_code == 2 and "path" in refused.output
