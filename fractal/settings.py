"""Service settings, read from ``FRACTAL_*`` environment variables (or a ``.env`` file).

Every embedded default (Postgres, Redis, Temporal, object store) is replaced by a real
service by setting its URL; that is how the Helm chart runs the service. Each field's
description is the documentation: ``docs/configuration.md`` is generated from it
(``make docs``) and a test keeps the two equal.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "change-me"
ENV_PREFIX = "FRACTAL_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    # -- where state lives ----------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("data"),
        description="where `fractal up` keeps all state (Postgres, Redis, Temporal, "
        "objects, JWT secret)",
    )
    database_url: str | None = Field(
        default=None,
        description="Postgres as a SQLAlchemy URL, `postgresql+psycopg://user:pass@host:5432/db`; "
        "required by `api`, `worker`, `migrate` (`fractal up` starts an embedded one)",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis, `redis://host:6379/0` (`rediss://` for TLS); "
        "`fractal up` starts an embedded one",
    )
    temporal_address: str = Field(
        default="localhost:7233", description="Temporal frontend `host:port`"
    )
    temporal_namespace: str = Field(default="default", description="Temporal namespace")
    temporal_task_queue: str = Field(
        default="fractal-render", description="task queue of the workflow and its activities"
    )
    temporal_connect_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how long an API request waits for an unreachable Temporal before 503",
    )

    # -- object storage -------------------------------------------------------------------
    storage: Literal["local", "s3"] = Field(
        default="local",
        description="`local` (a directory served by the API) or `s3` (MinIO, AWS S3, any S3 API)",
    )
    storage_dir: Path | None = Field(
        default=None, description="the local store's directory (default `<data_dir>/objects`)"
    )
    s3_endpoint: str | None = Field(
        default=None, description="S3 `host:port` (or URL) the API and workers use"
    )
    s3_public_endpoint: str | None = Field(
        default=None,
        description="`host:port` or URL put in presigned URLs, what browsers reach "
        "(default: `s3_endpoint`)",
    )
    s3_access_key: SecretStr | None = Field(default=None, description="S3 access key")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret key")
    s3_bucket: str = Field(default="fractal", description="bucket, created if missing")
    s3_region: str = Field(
        default="us-east-1", description="signing region (no lookup over the network)"
    )
    s3_secure: bool = Field(default=False, description="HTTPS to `s3_endpoint`")
    presign_expiry_seconds: int = Field(
        default=3600, ge=60, le=7 * 24 * 3600, description="lifetime of download URLs"
    )

    # -- authentication -------------------------------------------------------------------
    jwt_secret: SecretStr = Field(
        default=SecretStr(DEFAULT_JWT_SECRET),
        description="HS256 signing key, at least 32 characters; `fractal api` refuses the "
        "default, `fractal up` generates one into `<data_dir>/jwt-secret`",
    )
    jwt_algorithm: Literal["HS256"] = Field(
        default="HS256", description="the only accepted token algorithm"
    )
    access_token_minutes: int = Field(default=60, ge=1, description="access token lifetime")

    # -- HTTP -----------------------------------------------------------------------------
    api_host: str = Field(default="127.0.0.1", description="where `fractal api` listens")
    api_port: int = Field(default=8000, description="the API's port")
    public_base_url: str | None = Field(
        default=None,
        description="the API's URL as browsers reach it, base of the local store's signed "
        "links (default `http://<api_host>:<api_port>`)",
    )

    # -- limits and quotas ----------------------------------------------------------------
    submissions_per_minute: int = Field(
        default=20, description="per-user token bucket on submissions: refill a minute"
    )
    submission_burst: int = Field(default=5, description="per-user submission bucket capacity")
    auth_attempts_per_minute: int = Field(
        default=10, description="per client address, on sign-up, token and sign-in"
    )
    max_active_tasks: int = Field(default=3, description="queued + running tasks per user")
    redis_key_prefix: str = Field(
        default="fractal", description="namespace of the rate-limit keys in a shared Redis"
    )
    max_work_units: int = Field(
        default=800 * 600 * 3600 * 500,
        description="most estimated work of one request: width x height x supersample² x "
        "the sum of its frames' estimated costs x 100 pixel iterations",
    )
    reconcile_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="how often each API process starts the workflows of rows left queued "
        "without one",
    )

    # -- rendering ------------------------------------------------------------------------
    compat_spec: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON overrides of the animation the compatibility route `/add` renders, "
        'e.g. `{"width": 320, "height": 240}`',
    )
    chunk_seconds: float = Field(
        default=1.0, gt=0, description="seconds of video per render activity, on average"
    )
    max_parallel_chunks: int = Field(
        default=16, description="render activities one workflow runs at once"
    )
    render_heartbeat_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="a render attempt silent this long counts as lost (its worker died) "
        "and is retried elsewhere",
    )
    worker_activity_slots: int | None = Field(
        default=None,
        description="concurrent activities per worker, each rendering on one core "
        "(default: one per core)",
    )
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU priority of renders, so an API on the same host stays responsive",
    )


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The FRACTAL_* variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        secret = getattr(settings, name)
        if value is None:
            continue
        if isinstance(secret, SecretStr):
            value = secret.get_secret_value()
        env[f"{ENV_PREFIX}{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def settings_reference() -> str:
    """The Markdown table of every setting: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = f"`{json.dumps(field.default_factory())}`"  # type: ignore[call-arg]
        elif isinstance(field.default, SecretStr):
            default = f"`{field.default.get_secret_value()}`"
        elif field.default is None:
            default = "-"
        else:
            default = f"`{field.default}`"
        bounds = [
            f"{symbol} {getattr(constraint, attribute)}"
            for constraint in field.metadata
            for attribute, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
            if hasattr(constraint, attribute)
        ]
        meaning = f"{field.description} ({', '.join(bounds)})" if bounds else field.description
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


@lru_cache
def get_settings() -> Settings:
    return Settings()
