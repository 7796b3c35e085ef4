"""Rate limits, caps and a Redis outage: 429/503 and nothing half-created."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from fractal.db import Task, User, make_engine
from fractal.embedded import embedded_redis
from tests.stack import Stack, make_settings, serve_api, sign_up_and_log_in

TINY = {"width": 16, "height": 16, "frames": 1, "max_iter": 10}


def _tasks_of(database_url: str, user_id: str) -> int:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        count = connection.scalar(
            select(func.count()).select_from(Task).where(Task.owner_id == uuid.UUID(user_id))
        )
    engine.dispose()
    return int(count or 0)


def _users_named(database_url: str, username: str) -> int:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        count = connection.scalar(
            select(func.count()).select_from(User).where(User.username == username)
        )
    engine.dispose()
    return int(count or 0)


@pytest.fixture
def limited_api(
    tmp_path: Path, postgres_url: str, redis_url: str, temporal_address: str
):  # -> Iterator[tuple[str, Settings]]
    """An API with tight limits and no worker (tasks just stay queued)."""
    settings = make_settings(
        tmp_path,
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        submission_burst=2,
        submissions_per_minute=1,
        auth_attempts_per_minute=4,
        max_active_tasks=100,
    )
    with serve_api(settings) as base_url:
        yield base_url, settings


def test_submission_rate_limit(limited_api) -> None:
    base_url, settings = limited_api
    with httpx.Client(base_url=base_url) as client:
        headers = sign_up_and_log_in(client, f"rl-{uuid.uuid4().hex[:8]}")
        user_id = client.get("/v1/users/me", headers=headers).json()["id"]
        for _ in range(2):
            accepted = client.post("/v1/animations", json=TINY, headers=headers)
            assert accepted.status_code == 202
            assert int(accepted.headers["RateLimit-Limit"]) == 2
        refused = client.post("/v1/animations", json=TINY, headers=headers)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert _tasks_of(settings.database_url, user_id) == 2


def test_auth_rate_limit_per_client_address(limited_api) -> None:
    base_url, _ = limited_api
    with httpx.Client(base_url=base_url) as client:
        codes = [
            client.post("/v1/auth/token", data={"username": "nobody", "password": "x"}).status_code
            for _ in range(5)
        ]
        assert codes == [401, 401, 401, 401, 429]
        refused = client.post("/sign-in", json={"username": "nobody", "password": "x"})
        assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_active_task_cap(
    tmp_path: Path, postgres_url: str, redis_url: str, temporal_address: str
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        max_active_tasks=1,
    )
    with serve_api(settings) as base_url, httpx.Client(base_url=base_url) as client:
        headers = sign_up_and_log_in(client, f"cap-{uuid.uuid4().hex[:8]}")
        user_id = client.get("/v1/users/me", headers=headers).json()["id"]
        assert client.post("/v1/animations", json=TINY, headers=headers).status_code == 202
        refused = client.post("/v1/animations", json=TINY, headers=headers)
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        assert _tasks_of(postgres_url, user_id) == 1


def test_work_cap(local_stack: Stack) -> None:
    huge = {"width": 3840, "height": 2160, "frames": 3600, "max_iter": 10000}
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, "greedy")
        user_id = client.get("/v1/users/me", headers=headers).json()["id"]
        response = client.post("/v1/animations", json=huge, headers=headers)
        assert response.status_code == 422 and "too costly" in response.text
        assert _tasks_of(local_stack.settings.database_url or "", user_id) == 0


def test_redis_down_means_503_and_nothing_created(
    tmp_path: Path, postgres_url: str, temporal_address: str
) -> None:
    redis_server = contextlib.ExitStack()
    own_redis = redis_server.enter_context(embedded_redis(tmp_path / "redis"))
    settings = make_settings(
        tmp_path,
        database_url=postgres_url,
        redis_url=own_redis,
        temporal_address=temporal_address,
    )
    with redis_server, serve_api(settings) as base_url, httpx.Client(base_url=base_url) as client:
        headers = sign_up_and_log_in(client, "redisless")
        user_id = client.get("/v1/users/me", headers=headers).json()["id"]
        redis_server.close()  # stops this Redis; the API keeps running

        assert client.post("/v1/animations", json=TINY, headers=headers).status_code == 503
        added = client.post("/add", json={"z_re": 0, "z_im": 0}, headers=headers)
        assert added.status_code == 503
        login = {"username": "redisless", "password": "pass-word-1"}
        assert client.post("/v1/auth/token", data=login).status_code == 503
        assert client.post("/sign-in", json=login).status_code == 503
        newcomer = {"username": "late-comer", "password": "pass-word-1"}
        assert client.post("/v1/auth/signup", json=newcomer).status_code == 503
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/users/me", headers=headers).status_code == 200
    assert _tasks_of(postgres_url, user_id) == 0
    assert _users_named(postgres_url, "late-comer") == 0
