"""Schemathesis fuzzes every operation of the OpenAPI schema: no input may cause a 5xx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.stack import TEST_SECRET, make_settings, serve_api, sign_up_and_log_in


@pytest.fixture(scope="module")
def fuzz_api(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str,
    temporal_address: str,
) -> Iterator[str]:
    """An API with no worker behind it: submissions queue up and are never rendered."""
    directory: Path = tmp_path_factory.mktemp("fuzz")
    config = make_settings(
        directory,
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        max_active_tasks=3,
    )
    with serve_api(config) as base_url:
        yield base_url


@pytest.fixture
def auth_headers(fuzz_api: str) -> dict:
    with httpx.Client(base_url=fuzz_api, timeout=30) as client:
        return sign_up_and_log_in(client, f"fuzz-{uuid.uuid4().hex[:12]}")


def _openapi() -> dict:
    # The schema is the app's own; building the app connects to nothing.
    from api.main import create_app
    from fractal.settings import Settings

    offline = Settings(
        jwt_secret=TEST_SECRET,
        database_url="postgresql+psycopg://offline@127.0.0.1:1/x",
        redis_url="redis://127.0.0.1:1/0",
    )
    return create_app(offline).openapi()


schema = schemathesis.openapi.from_dict(_openapi())


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, fuzz_api: str, auth_headers: dict) -> None:
    response = case.call(base_url=fuzz_api, headers=auth_headers, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
