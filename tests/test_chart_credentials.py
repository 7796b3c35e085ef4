"""`fractal ensure-credentials`, the chart's credentials Job, against a stand-in for the
Kubernetes API (no cluster here): a TLS server with its own CA that implements the three
Secret calls the command makes, checks the bearer token and keeps what it is sent."""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fractal.credentials import ensure_secret, generate, parse_keys

TOKEN = "service-account-token"
NAMESPACE = "fractal"
NAME = "fractal-fractal-server-credentials"


@dataclass
class FakeSecrets:
    """The Secrets of one namespace, and every request made."""

    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    conflict_once: bool = False


def handler_for(state: FakeSecrets) -> type[http.server.BaseHTTPRequestHandler]:
    prefix = f"/api/v1/namespaces/{NAMESPACE}/secrets"

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self) -> bool:
            state.requests.append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.answer(401, {"message": "Unauthorized"})
                return False
            return True

        def body(self) -> dict[str, Any]:
            return json.loads(self.rfile.read(int(self.headers["Content-Length"])))  # type: ignore[no-any-return]

        def do_GET(self) -> None:
            if not self.authorized():
                return
            name = self.path.removeprefix(prefix + "/")
            if name in state.secrets:
                self.answer(200, state.secrets[name])
            else:
                self.answer(404, {"message": f'secrets "{name}" not found'})

        def do_POST(self) -> None:
            if not self.authorized():
                return
            secret = self.body()
            name = secret["metadata"]["name"]
            if state.conflict_once:  # another writer won the race
                state.conflict_once = False
                state.secrets[name] = {**secret, "data": {"jwt-secret": "d29u"}}
                self.answer(409, {"message": "already exists"})
            elif name in state.secrets:
                self.answer(409, {"message": "already exists"})
            else:
                state.secrets[name] = secret
                self.answer(201, secret)

        def do_PATCH(self) -> None:
            if not self.authorized():
                return
            assert self.headers["Content-Type"] == "application/merge-patch+json"
            name = self.path.removeprefix(prefix + "/")
            state.secrets[name]["data"].update(self.body()["data"])
            self.answer(200, state.secrets[name])

    return Handler


@dataclass
class FakeCluster:
    state: FakeSecrets
    host: str
    port: int
    account: Path


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    cert, key = self_signed(tmp_path)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN + "\n")
    (account / "namespace").write_text(NAMESPACE)
    (account / "ca.crt").write_bytes(cert.read_bytes())
    state = FakeSecrets()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeCluster(state, "127.0.0.1", server.server_address[1], account)
    finally:
        server.shutdown()
        server.server_close()


def run_command(
    cluster: FakeCluster, *keys: str, name: str = NAME
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBERNETES_SERVICE_HOST": cluster.host,
        "KUBERNETES_SERVICE_PORT": str(cluster.port),
    }
    command = [
        sys.executable,
        "-m",
        "fractal.cli",
        "ensure-credentials",
        name,
        *keys,
        "--label=app.kubernetes.io/component=credentials",
        f"--service-account={cluster.account}",
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def data_of(cluster: FakeCluster, name: str = NAME) -> dict[str, str]:
    return {
        key: base64.b64decode(value).decode()
        for key, value in cluster.state.secrets[name]["data"].items()
    }


def test_creates_the_secret_then_never_changes_a_key(cluster: FakeCluster) -> None:
    first = run_command(cluster, "jwt-secret:48", "postgresql-password:32")
    assert first.returncode == 0, first.stderr
    assert f"{NAME}/jwt-secret: created" in first.stdout
    created = data_of(cluster)
    assert len(created["jwt-secret"]) == 48 and created["jwt-secret"].isalnum()
    assert len(created["postgresql-password"]) == 32
    assert cluster.state.secrets[NAME]["metadata"]["labels"] == {
        "app.kubernetes.io/component": "credentials"
    }
    # Every later run (each upgrade): the same values; a newly needed key is added.
    again = run_command(cluster, "jwt-secret:48", "postgresql-password:32", "redis-password:32")
    assert again.returncode == 0, again.stderr
    assert f"{NAME}/jwt-secret: kept" in again.stdout
    assert f"{NAME}/redis-password: created" in again.stdout
    completed = data_of(cluster)
    assert {k: completed[k] for k in created} == created
    assert len(completed["redis-password"]) == 32
    # No value is ever printed.
    for value in completed.values():
        assert value not in again.stdout + again.stderr + first.stdout + first.stderr
    methods = [method for method, _ in cluster.state.requests]
    assert methods == ["GET", "POST", "GET", "PATCH"]


def test_a_basic_auth_secret_keeps_its_password_and_follows_its_user_name(
    cluster: FakeCluster,
) -> None:
    """The Temporal Web UI's credentials (Traefik reads a kubernetes.io/basic-auth Secret):
    the password generated once, the user name as the values say."""
    auth = "fractal-fractal-server-temporal-ui-auth"
    basic_auth = ("password:24", "--type=kubernetes.io/basic-auth")
    first = run_command(cluster, *basic_auth, "--value=username=admin", name=auth)
    assert first.returncode == 0, first.stderr
    assert cluster.state.secrets[auth]["type"] == "kubernetes.io/basic-auth"
    created = data_of(cluster, auth)
    assert created["username"] == "admin"
    assert len(created["password"]) == 24 and created["password"].isalnum()
    assert f"{auth}/username: set" in first.stdout
    assert created["password"] not in first.stdout + first.stderr
    same = run_command(cluster, *basic_auth, "--value=username=admin", name=auth)
    assert f"{auth}/username: kept" in same.stdout and data_of(cluster, auth) == created
    renamed = run_command(cluster, *basic_auth, "--value=username=operator", name=auth)
    assert renamed.returncode == 0, renamed.stderr
    assert data_of(cluster, auth) == {**created, "username": "operator"}
    for bad in ("username", "=admin"):
        refused = run_command(cluster, *basic_auth, f"--value={bad}", name=auth)
        assert refused.returncode == 2 and "KEY=VALUE" in refused.stderr, bad


def test_a_concurrent_creator_wins_and_its_values_are_kept(cluster: FakeCluster) -> None:
    cluster.state.conflict_once = True
    result = run_command(cluster, "jwt-secret:48", "s3-secret-key:40")
    assert result.returncode == 0, result.stderr
    data = data_of(cluster)
    assert data["jwt-secret"] == "won"  # the other writer's value
    assert len(data["s3-secret-key"]) == 40


def test_refuses_a_server_it_cannot_verify_and_a_bad_token(cluster: FakeCluster) -> None:
    (cluster.account / "ca.crt").write_text("")  # not the server's CA
    result = run_command(cluster, "jwt-secret:48")
    assert result.returncode == 1 and NAME not in cluster.state.secrets
    assert "error:" in result.stderr


def test_rejects_bad_arguments_and_runs_only_in_a_pod(cluster: FakeCluster) -> None:
    for bad in ("jwt-secret", "jwt-secret:8", ":32", "jwt-secret:abc"):
        result = run_command(cluster, bad)
        assert result.returncode == 2 and "KEY:LENGTH" in result.stderr, bad
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    outside = subprocess.run(
        [sys.executable, "-m", "fractal.cli", "ensure-credentials", NAME, "jwt-secret:48"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert outside.returncode == 1 and "not in a Kubernetes pod" in outside.stderr


def test_generated_values_are_alphanumeric_and_differ() -> None:
    values = {generate(32) for _ in range(50)}
    assert len(values) == 50 and all(v.isalnum() and len(v) == 32 for v in values)
    assert parse_keys(["a:16", "b:256"]) == {"a": 16, "b": 256}
    assert callable(ensure_secret)
