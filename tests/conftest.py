"""Session fixtures: real Postgres, Redis, Temporal and S3 (moto) servers, started once,
and two running services (API + worker), one per object store."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import TEST_SECRET, Stack, make_settings, serve_api

# The storage signer and the API derive keys from this; tests never use the default.
os.environ.setdefault("FRACTAL_JWT_SECRET", TEST_SECRET)


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    from fractal.embedded import embedded_postgres
    from fractal.migrate import upgrade_database

    # Not under pytest's basetemp: as root, pgserver runs Postgres as the user "pgserver",
    # which must traverse every parent directory, and pytest keeps its own 0700.
    with (
        tempfile.TemporaryDirectory(prefix="fractal-test-pg-") as directory,
        embedded_postgres(Path(directory) / "postgres") as url,
    ):
        upgrade_database(url)
        yield url


@pytest.fixture(scope="session")
def redis_url(services_dir: Path) -> Iterator[str]:
    from fractal.embedded import embedded_redis

    with embedded_redis(services_dir / "redis") as url:
        yield url


@pytest.fixture(scope="session")
def temporal_address(services_dir: Path) -> Iterator[str]:
    from fractal.embedded import embedded_temporal

    with embedded_temporal(services_dir / "temporal", headless=True) as address:
        yield address


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's real S3 server (HTTP) on a free port; yields host:port."""
    from moto.server import ThreadedMotoServer

    from fractal.embedded import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


def _stack(directory: Path, **overrides: object) -> Iterator[Stack]:
    settings = make_settings(directory, **overrides)
    with serve_api(settings) as base_url:
        stack = Stack(settings, base_url)
        stack.start_worker()
        try:
            yield stack
        finally:
            stack.stop_workers()


@pytest.fixture(scope="session")
def local_stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str,
    temporal_address: str,
) -> Iterator[Stack]:
    """API + worker with the local-directory object store."""
    yield from _stack(
        tmp_path_factory.mktemp("local"),
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        storage="local",
    )


@pytest.fixture(scope="session")
def s3_stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str,
    temporal_address: str,
    s3_endpoint: str,
) -> Iterator[Stack]:
    """API + worker with S3 (moto) as the object store."""
    yield from _stack(
        tmp_path_factory.mktemp("s3"),
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        storage="s3",
        s3_endpoint=s3_endpoint,
        s3_access_key="test",
        s3_secret_key="test",
        s3_bucket="fractal-e2e",
    )
