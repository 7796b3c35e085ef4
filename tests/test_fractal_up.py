"""`fractal up` as a user runs it: one command, state kept across a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fractal.embedded import free_port, port_is_open
from tests.stack import ROOT, wait_for_state

SMALL = {"width": 64, "height": 48, "frames": 24, "max_iter": 100}


def _start(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRACTAL_")}
    command = [
        sys.executable,
        "-m",
        "fractal.cli",
        "up",
        "--data-dir",
        str(data_dir),
        "--port",
        str(ports["api"]),
        "--temporal-port",
        str(ports["temporal"]),
        "--ui-port",
        str(ports["ui"]),
        "--worker-metrics-port",
        str(ports["worker_metrics"]),
    ]
    log = open(data_dir.parent / "up.log", "ab")  # noqa: SIM115
    # A session of its own, like a terminal's foreground job: Ctrl-C signals the whole group.
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, (data_dir.parent / "up.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{ports['api']}/readyz").status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, (data_dir.parent / "up.log").read_text()
        time.sleep(0.3)


def _stop(process: subprocess.Popen[bytes], signum: int, ports: dict[str, int]) -> None:
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)  # what Ctrl-C in a terminal does
    else:
        process.send_signal(signum)  # what a service manager does
    assert process.wait(60) == 0
    for port in ports.values():
        assert not port_is_open("127.0.0.1", port), port
    args = [str(arg) for arg in process.args]  # type: ignore[union-attr]
    data_dir = Path(args[args.index("--data-dir") + 1])
    assert not (data_dir / "postgres" / "postmaster.pid").exists()  # Postgres stopped too


@pytest.mark.slow
def test_up_keeps_state_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    ports = {
        "api": free_port(),
        "temporal": free_port(),
        "ui": free_port(),
        "worker_metrics": free_port(),
    }
    api = f"http://127.0.0.1:{ports['api']}"

    process = _start(data_dir, ports)
    try:
        assert httpx.get(f"http://127.0.0.1:{ports['ui']}/").status_code == 200  # Temporal UI
        with httpx.Client(base_url=api, timeout=30) as client:
            credentials = {"username": "keeper", "password": "keeper-pass"}
            assert client.post("/v1/auth/signup", json=credentials).status_code == 201
            token = client.post("/v1/auth/token", data=credentials).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            task = client.post("/v1/animations", json=SMALL, headers=headers).json()
            task = wait_for_state(client, headers, task["id"], {"succeeded", "failed", "canceled"})
            assert task["state"] == "succeeded", task
            # The metrics URLs it printed answer, and count what just happened.
            printed = (tmp_path / "up.log").read_text()
            worker_metrics = f"http://127.0.0.1:{ports['worker_metrics']}/metrics"
            assert f"{api}/metrics" in printed and worker_metrics in printed, printed
            api_metrics = client.get("/metrics").text
            assert 'fractal_api_submissions_total{outcome="accepted"} 1.0' in api_metrics, [
                line for line in api_metrics.splitlines() if "submissions_total" in line
            ]
            frames = [
                line
                for line in httpx.get(worker_metrics).text.splitlines()
                if line.startswith("fractal_render_frames_total")
            ]
            assert frames and float(frames[0].split()[-1]) == SMALL["frames"], frames
    finally:
        _stop(process, signal.SIGINT, ports)
    assert (data_dir / "jwt-secret").stat().st_mode & 0o777 == 0o600
    _assert_private(data_dir)

    process = _start(data_dir, ports)
    try:
        with httpx.Client(base_url=api, timeout=30) as client:
            # The secret was kept, so the old token is still good.
            listing = client.get("/v1/animations", headers=headers).json()
            assert [item["id"] for item in listing["items"]] == [task["id"]]
            assert listing["items"][0]["state"] == "succeeded"
            video = client.get(f"/v1/animations/{task['id']}/video", headers=headers)
            assert video.status_code == 302
            assert httpx.get(video.headers["Location"]).content[4:8] == b"ftyp"
    finally:
        _stop(process, signal.SIGTERM, ports)


def _assert_private(data_dir: Path) -> None:
    """Nobody else may list or read the data directory; what is in it is the owner's."""
    mode = data_dir.stat().st_mode & 0o777
    # 0711 as root only: pgserver's Postgres user must be able to pass through.
    assert mode == (0o711 if os.geteuid() == 0 else 0o700), oct(mode)
    files = [
        data_dir / "redis-password",
        data_dir / "temporal" / "temporal.db",
        *(data_dir / "objects" / "videos").glob("*.mp4"),
    ]
    assert len(files) > 2
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
    for directory in (data_dir / "objects", data_dir / "objects" / "videos", data_dir / "redis"):
        assert directory.stat().st_mode & 0o077 == 0, directory
