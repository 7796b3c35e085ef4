"""A running service for tests: a uvicorn API in a thread and a worker subprocess."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fractal.cli.client import wait_for_task
from fractal.cli.up import start_worker
from fractal.embedded import free_port, stop_process
from fractal.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-" + "x" * 32


@contextlib.contextmanager
def serve_api(settings: Settings, *, tracing: Any = None) -> Iterator[str]:
    """Serve ``create_app(settings)`` on its api_port; yields the base URL."""
    from api.main import create_app
    from api.server import server_config

    # The configuration `fractal api` serves with (header limits and timeouts included).
    config = server_config(
        create_app(settings, tracing=tracing), settings, host="127.0.0.1", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.api_port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Stack:
    settings: Settings
    base_url: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_metrics_ports: list[int] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """A worker with its own metrics port (they share this machine)."""
        log_path = self.settings.data_dir / f"worker-{len(self.workers)}.log"
        settings = self.settings.model_copy(update={"worker_metrics_port": free_port()})
        process = start_worker(settings, log_path)
        self.workers.append(process)
        self.worker_metrics_ports.append(settings.worker_metrics_port)
        return process

    def live_worker_metrics_port(self) -> int:
        """The metrics port of a worker still running (tests that kill workers start new
        ones, with ports of their own)."""
        for process, port in zip(self.workers, self.worker_metrics_ports, strict=True):
            if process.poll() is None:
                return port
        raise RuntimeError("no worker of this stack is running")

    def stop_workers(self) -> None:
        for process in self.workers:
            stop_process(process)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def store(self) -> Any:
        from api import paths
        from fractal.storage import make_store

        return make_store(self.settings, self.base_url + paths.FILES)


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "jwt_secret": TEST_SECRET,
        "api_port": free_port(),
        "temporal_task_queue": f"test-{data_dir.name}",
        "redis_key_prefix": f"test-{data_dir.name}",
        "worker_activity_slots": 2,
        "auth_attempts_per_minute": 10_000,
        "signups_per_hour": 100_000,
        "login_failures_before_backoff": 1_000,
        "submissions_per_minute": 10_000,
        "submission_burst": 1_000,
        "max_active_tasks": 5,
        "render_heartbeat_timeout_seconds": 4.0,
        # Chunks longer than this are stored in parts: the tests' renders use both ways.
        "render_checkpoint_seconds": 0.5,
        "compat_spec": {"width": 64, "height": 48, "frames": 24, "max_iter": 100},
    }
    values.update(overrides)
    return Settings(**values)


def sign_up_and_log_in(client: httpx.Client, username: str, password: str = "pass-word-1") -> dict:
    response = client.post("/v1/auth/signup", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    response = client.post("/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def wait_for_state(
    client: httpx.Client,
    headers: dict,
    task_id: str,
    states: set[str],
    timeout: float = 120,
    on_update: Any = None,
) -> dict:
    """Poll the task through the API until its state is one of ``states``."""

    def fetch() -> dict:
        return dict(client.get(f"/v1/animations/{task_id}", headers=headers).json())

    return wait_for_task(fetch, states, timeout=timeout, interval=0.1, on_update=on_update)
