"""Service settings, read from ``FRACTAL_*`` environment variables (or a ``.env`` file).

Every embedded default (Postgres, Redis, Temporal, object store) is replaced by a real
service by setting its URL; that is how the Helm chart runs the service.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRACTAL_", env_file=".env", extra="ignore")

    # Where `fractal up` keeps every embedded service's state.
    data_dir: Path = Path("data")

    # Postgres (SQLAlchemy URL, psycopg 3 driver), e.g. postgresql+psycopg://u:p@host/db
    database_url: str | None = None
    # Redis, e.g. redis://host:6379/0
    redis_url: str | None = None
    # Temporal frontend, host:port
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "fractal-render"
    # How long an API request waits for an unreachable Temporal before answering 503.
    temporal_connect_timeout_seconds: float = Field(default=5.0, gt=0)

    # Object storage: "local" (a directory, served through the API) or "s3" (MinIO, S3).
    storage: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None  # local store; default <data_dir>/objects
    s3_endpoint: str | None = None  # host:port as the API and workers reach it
    s3_public_endpoint: str | None = None  # host:port in presigned URLs (browser-facing)
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "fractal"
    s3_region: str = "us-east-1"
    s3_secure: bool = False
    presign_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # Auth
    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_algorithm: Literal["HS256"] = "HS256"
    access_token_minutes: int = Field(default=60, ge=1)

    # HTTP
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str | None = None  # for links the local store signs

    # Rate limits and quotas
    submissions_per_minute: int = 20
    submission_burst: int = 5
    auth_attempts_per_minute: int = 10
    max_active_tasks: int = 3
    redis_key_prefix: str = "fractal"  # namespaces the rate-limit keys in a shared Redis
    # pixels x frames x max_iter of one request (default: 4K x 3600 frames x 500 is too much)
    max_work_units: int = 800 * 600 * 3600 * 500

    # How often each API process starts the workflows of rows left queued without one.
    reconcile_interval_seconds: float = Field(default=60.0, gt=0)

    # Rendering
    # Overrides of the original default animation that the compatibility route /add
    # renders, e.g. FRACTAL_COMPAT_SPEC='{"width": 320, "height": 240}'; empty: the original.
    compat_spec: dict[str, Any] = Field(default_factory=dict)
    chunk_seconds: float = Field(default=1.0, gt=0)
    max_parallel_chunks: int = 16
    # A render attempt silent this long counts as lost (its worker died) and is retried.
    render_heartbeat_timeout_seconds: float = Field(default=20.0, gt=0)
    worker_activity_slots: int | None = None  # default: one per core
    # Renders are batch work: a lower CPU priority keeps an API on the same host responsive.
    worker_nice: int = Field(default=10, ge=0, le=19)


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The FRACTAL_* variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        secret = getattr(settings, name)
        if value is None:
            continue
        if isinstance(secret, SecretStr):
            value = secret.get_secret_value()
        env[f"FRACTAL_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


@lru_cache
def get_settings() -> Settings:
    return Settings()
