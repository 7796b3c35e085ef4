"""`fractal up` as a user runs it: one command, state kept across a restart; and as an
operator's bad day finds it: children killed, the whole process group killed, servers left
behind by an earlier run, a second `fractal up` on the same data directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fractal.cli.client import poll
from fractal.embedded import free_port, port_is_open
from tests.stack import ROOT, sign_up_and_log_in, wait_for_state

SMALL = {"width": 64, "height": 48, "frames": 24, "max_iter": 100}


def _ports() -> dict[str, int]:
    return {name: free_port() for name in ("api", "temporal", "ui", "worker_metrics")}


def _command(data_dir: Path, ports: dict[str, int]) -> list[str]:
    return [
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


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FRACTAL_")}


def _start(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    env = _env()
    command = _command(data_dir, ports)
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


def _recorded_pid(path: Path) -> int:
    return int(json.loads(path.read_text())["pid"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by its parent) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def _log_says(tmp_path: Path, text: str, timeout: float = 60) -> None:
    poll(lambda: (tmp_path / "up.log").read_text(), lambda log: text in log, timeout=timeout)


@pytest.mark.slow
def test_up_restarts_a_child_that_dies_and_refuses_a_second_up(tmp_path: Path) -> None:
    """Before: a dead worker became a zombie, Redis was never restarted (and got a new
    random port on every start), and the API went on half broken."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    ports = _ports()
    process = _start(data_dir, ports)
    try:
        worker = _recorded_pid(data_dir / "worker.pid.json")
        os.kill(worker, signal.SIGKILL)
        _log_says(tmp_path, "worker exited (killed by SIGKILL); restarting it in 1 s")
        _log_says(tmp_path, "worker restarted")
        assert _recorded_pid(data_dir / "worker.pid.json") != worker
        assert not _alive(worker)  # reaped, not a zombie

        redis_port = json.loads((data_dir / "ports.json").read_text())["redis"]
        os.kill(_recorded_pid(data_dir / "redis" / "redis.pid.json"), signal.SIGKILL)
        _log_says(tmp_path, "Redis restarted")
        assert port_is_open("127.0.0.1", redis_port)  # the same port: the API's URL holds

        with httpx.Client(base_url=f"http://127.0.0.1:{ports['api']}", timeout=30) as client:
            headers = sign_up_and_log_in(client, "restarted")  # Redis: rate limits
            task = client.post("/v1/animations", json=SMALL, headers=headers).json()
            done = wait_for_state(client, headers, task["id"], {"succeeded", "failed", "canceled"})
            assert done["state"] == "succeeded", done  # by the restarted worker

        # One `fractal up` per data directory.
        command = _command(data_dir, _ports())
        second = subprocess.run(
            command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert f"{data_dir} is in use by another fractal up (pid {process.pid})" in second.stderr
        assert process.poll() is None
    finally:
        _stop(process, signal.SIGTERM, ports)


def _plant_stale_servers(data_dir: Path) -> dict[str, Any]:
    """What a killed `fractal up` of before this issue left behind: a Postgres that pgserver
    started detached (pg_ctl) on the data directory, and a Redis on its recorded port."""
    from fractal.embedded import RedisServer, redis_server_binary, write_pid_file

    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pgserver; pgserver.get_server(sys.argv[1], cleanup_mode=None)",
            str(data_dir / "postgres"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    port = free_port()
    (data_dir / "ports.json").write_text(json.dumps({"redis": port}))
    redis_dir = data_dir / "redis"
    redis_dir.mkdir()
    RedisServer(redis_dir, port)._prepare()
    redis = subprocess.Popen(
        [redis_server_binary(), str(redis_dir / "redis.conf")],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    write_pid_file(redis_dir / "redis.pid.json", redis.pid)
    poll(lambda: port_is_open("127.0.0.1", port), bool, timeout=15, interval=0.1)
    return {"postmaster": postmaster, "redis": redis, "redis_port": port}


@pytest.mark.slow
def test_up_stops_what_a_killed_run_left_and_dies_with_its_children(tmp_path: Path) -> None:
    """Before: Postgres, Redis and Temporal outlived a SIGKILLed `fractal up` (own sessions,
    `pg_ctl` detaching), the next start refused ("port already in use"), and after a manual
    clean-up two Redis shared one append-only file."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stale = _plant_stale_servers(data_dir)
    ports = _ports()
    process = _start(data_dir, ports)
    children: dict[str, int] = {}
    try:
        # The stale servers were stopped, and ours run in their place.
        assert not _alive(stale["postmaster"])
        stale["redis"].wait(5)
        assert json.loads((data_dir / "ports.json").read_text())["redis"] == stale["redis_port"]
        children = {
            "postgres": int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0]),
            "redis": _recorded_pid(data_dir / "redis" / "redis.pid.json"),
            "temporal": _recorded_pid(data_dir / "temporal" / "temporal.pid.json"),
            "worker": _recorded_pid(data_dir / "worker.pid.json"),
        }
        assert stale["postmaster"] != children["postgres"]
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['api']}", timeout=30) as client:
            sign_up_and_log_in(client, "survivor")
    finally:
        # An operator's kill -9 of the whole process group.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    # Every child dies with it (the servers are in sessions of their own: they are told
    # by the kernel, PR_SET_PDEATHSIG).
    poll(
        lambda: [name for name, pid in children.items() if _alive(pid)],
        lambda alive: not alive,
        timeout=30,
        interval=0.2,
    )
    for port in (ports["api"], ports["temporal"], stale["redis_port"]):
        assert not port_is_open("127.0.0.1", port), port

    # And it starts again on the same data directory, with what it kept.
    process = _start(data_dir, ports)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['api']}", timeout=30) as client:
            credentials = {"username": "survivor", "password": "pass-word-1"}
            assert client.post("/v1/auth/token", data=credentials).status_code == 200
    finally:
        _stop(process, signal.SIGTERM, ports)


def test_a_port_it_picks_is_never_one_another_part_was_told_to_use(tmp_path: Path) -> None:
    """Redis's port is picked before Temporal, the API and the worker bind theirs: it must
    not be one of them (a recorded one included), or Temporal's start fails "in use"."""
    from fractal.cli.up import stable_port

    taken = free_port()
    (tmp_path / "ports.json").write_text(json.dumps({"redis": taken}))
    picked = stable_port(tmp_path, "redis", None, reserved=frozenset({taken}))
    assert picked != taken
    assert json.loads((tmp_path / "ports.json").read_text())["redis"] == picked
    # Unreserved, the recorded port is kept across starts.
    assert stable_port(tmp_path, "redis", None) == picked
