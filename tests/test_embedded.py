"""The embedded servers are real and answer their protocols."""

from __future__ import annotations

import asyncio

import redis
from sqlalchemy import text

from fractal.db import make_engine


def test_postgres_is_migrated(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with engine.connect() as connection:
        tables = set(
            connection.scalars(text("select tablename from pg_tables where schemaname = 'public'"))
        )
    engine.dispose()
    assert {"users", "tasks", "task_chunks", "alembic_version"} <= tables


def test_redis_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    client.close()


def test_temporal_answers(temporal_address: str) -> None:
    from fractal.temporal import connect

    async def check() -> None:
        client = await connect(temporal_address, "default")
        await client.service_client.check_health()

    asyncio.run(check())


def test_a_busy_port_is_refused(tmp_path, redis_url: str) -> None:
    import pytest

    from fractal.embedded import EmbeddedServerError, embedded_redis, embedded_temporal

    busy = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with (
        pytest.raises(EmbeddedServerError, match="already in use"),
        embedded_redis(tmp_path / "r", port=busy),
    ):
        pass
    with (
        pytest.raises(EmbeddedServerError, match="already in use"),
        embedded_temporal(tmp_path / "t", port=busy),
    ):
        pass


def test_fractal_migrate_is_idempotent(postgres_url: str, monkeypatch) -> None:
    from typer.testing import CliRunner

    from fractal.cli import app

    monkeypatch.setenv("FRACTAL_DATABASE_URL", postgres_url)
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0 and "up to date" in result.output
    monkeypatch.delenv("FRACTAL_DATABASE_URL")
    assert CliRunner().invoke(app, ["migrate"]).exit_code == 2


def test_the_models_match_the_migrations(postgres_url: str) -> None:
    """Nothing for `make migration` to write: every model change has its migration."""
    from fractal.migrate import model_differences

    assert model_differences(postgres_url) == []
