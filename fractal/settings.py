"""Service settings, read from ``FRACTAL_*`` environment variables (or a ``.env`` file).

Every embedded default (Postgres, Redis, Temporal, object store) is replaced by a real
service by setting its URL; that is how the Helm chart runs the service. Each field's
description is the documentation: ``docs/configuration.md`` is generated from it
(``make docs``) and a test keeps the two equal.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
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
        default=2.0,
        gt=0,
        description="how long an API request waits for an unreachable Temporal: a submission "
        "is then queued for the reconcile loop (202), a cancel completed by the watchdog",
    )
    temporal_tls: bool = Field(
        default=False,
        description="TLS to the Temporal frontend (Temporal Cloud, any TLS Temporal); implied "
        "by `temporal_api_key` and the `temporal_tls_*` files",
    )
    temporal_tls_server_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA that signed the frontend's certificate "
        "(default: the system's trusted CAs)",
    )
    temporal_tls_client_cert_file: Path | None = Field(
        default=None, description="PEM client certificate for mTLS (with its key file)"
    )
    temporal_tls_client_key_file: Path | None = Field(
        default=None, description="PEM private key of the mTLS client certificate"
    )
    temporal_tls_server_name: str | None = Field(
        default=None,
        description="name to verify the frontend's certificate against "
        "(default: the host of `temporal_address`)",
    )
    temporal_api_key: SecretStr | None = Field(
        default=None,
        description="API key sent as a bearer token to the frontend (Temporal Cloud); turns TLS on",
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
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description='addresses or networks (JSON list, e.g. `["10.244.0.0/16"]`) of the '
        "reverse proxies whose `X-Forwarded-For` is believed; the client address (rate "
        "limits, logs) is the first one from the right that is not a trusted proxy. "
        "Default: trust no proxy, the client is the TCP peer",
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="largest request body; larger answers 413 while it streams in, before "
        "any route or authentication runs",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=4096,
        description="largest request line plus headers; larger answers 400 and closes",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a connection must deliver a request's line and headers within this "
        "many seconds of its first byte (or of connecting); otherwise it is closed",
    )
    body_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="a request body must arrive whole within this many seconds; "
        "otherwise 408 and the connection is closed",
    )
    keep_alive_timeout_seconds: int = Field(
        default=5, ge=1, description="an idle keep-alive connection is closed after this"
    )
    max_connections: int | None = Field(
        default=1000,
        ge=1,
        description="open connections one API process serves at once; beyond it 503",
    )

    # -- limits and quotas ----------------------------------------------------------------
    submissions_per_minute: int = Field(
        default=20, description="per-user token bucket on submissions: refill a minute"
    )
    submission_burst: int = Field(default=5, description="per-user submission bucket capacity")
    auth_attempts_per_minute: int = Field(
        default=10, description="per client address, on sign-up, token and sign-in"
    )
    signups_per_hour: int = Field(
        default=10, ge=1, description="accounts one client address may create an hour"
    )
    login_failures_before_backoff: int = Field(
        default=5,
        ge=1,
        description="failed logins of one account (whatever the address) before each "
        "further attempt must wait, 1 s doubling up to `login_backoff_max_seconds`",
    )
    login_backoff_max_seconds: int = Field(
        default=900, ge=1, description="longest wait between failed logins of one account"
    )
    password_hash_concurrency: int = Field(
        default=2,
        ge=1,
        description="argon2 hashes (64 MiB and about 0.2 s each) one API process computes "
        "at once; more wait, and after 10 s answer 503",
    )
    compat_routes: bool = Field(
        default=True,
        description="serve the original service's routes (`/sign-up`, `/sign-in`, `/add`, "
        "`/task/{id}`, `/delete-user`)",
    )
    max_active_tasks: int = Field(default=3, description="queued + running tasks per user")
    redis_key_prefix: str = Field(
        default="fractal", description="namespace of the rate-limit keys in a shared Redis"
    )
    max_task_cpu_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="most CPU-seconds one animation may cost by the admission estimate "
        "(an upper bound, see docs/security.md); more answers 422",
    )
    cpu_seconds_per_day: float = Field(
        default=4 * 3600.0,
        gt=0,
        description="CPU-seconds of rendering one user may spend per UTC day (estimates "
        "reserved at submission, replaced by the measured time when a task ends); over "
        "it 429 until midnight UTC",
    )
    stored_bytes_per_user: int = Field(
        default=2 * 1024**3,
        ge=0,
        description="bytes of videos one user may keep (finished videos plus the estimates "
        "of queued and running ones); over it 429",
    )
    worker_memory_bytes: int = Field(
        default=1536 * 1024**2,
        gt=0,
        description="memory of one worker process (its container limit); an animation "
        "whose chunks, `worker_activity_slots` at once, could need more is refused (422)",
    )
    video_retention_hours: float = Field(
        default=30 * 24.0,
        ge=0,
        description="finished animations (row, video and poster) are deleted this long after they "
        "finish; 0 keeps them forever",
    )
    expiry_interval_seconds: float = Field(
        default=300.0, gt=0, description="how often each API process deletes expired animations"
    )
    reconcile_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        description="how often each API process starts the workflows of rows left queued "
        "without one (the API died before starting it, or Temporal was unreachable)",
    )
    status_cache_seconds: float = Field(
        default=0.25,
        ge=0,
        le=5,
        description="how long each API process serves a task's status again without reading "
        "the database (`GET /v1/animations/{id}` polled by many clients); 0: off",
    )
    watchdog_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how often each API process asks Temporal about its task queues "
        "(pollers, backlog) and finishes what no worker will: cancels, tasks waiting too long, "
        "tasks past their deadline",
    )
    worker_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        description="an active task that no worker serves this long (no worker polls the "
        "render queue, or none started its workflow) is shown `waiting` for a worker",
    )
    worker_wait_timeout_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="a task waiting for a worker this long fails with that reason (its "
        "reservations are returned)",
    )
    cancel_grace_seconds: float = Field(
        default=20.0,
        gt=0,
        description="a running task whose cancel its workflow has not completed within this "
        "(no worker runs it) is canceled by the API: workflow terminated, objects deleted",
    )
    task_timeout_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="a task not finished this long after its submission fails (the bound on "
        "any task's life; its workflow's execution timeout is a little longer)",
    )

    # -- studio: previews, map, live progress ----------------------------------------------
    preview_max_pixels: int = Field(
        default=1280 * 720,
        ge=16 * 16,
        description="largest width x height of a preview image (`/v1/preview`)",
    )
    preview_max_work_units: int = Field(
        default=1_000_000_000,
        ge=1,
        description="most width x height x supersample² x estimated iterations a pixel "
        "(max_iter where the estimate cannot tell) of one preview",
    )
    previews_per_minute: int = Field(
        default=600,
        ge=1,
        description="per user (or client address when anonymous): token bucket on rendered "
        "previews and estimates, refill a minute (cached answers are free)",
    )
    preview_burst: int = Field(
        default=60, ge=1, description="capacity of the preview bucket (a drag across the map)"
    )
    map_tiles_per_minute: int = Field(
        default=3000,
        ge=1,
        description="per user or client address: token bucket on rendered map tiles",
    )
    map_tile_burst: int = Field(
        default=300, ge=1, description="capacity of the map-tile bucket (a zoom needs ~20)"
    )
    preview_threads: int = Field(
        default=2,
        ge=1,
        description="threads of the API process that render previews and map tiles",
    )
    preview_cache_megabytes: int = Field(
        default=64,
        ge=0,
        description="memory of the API process for encoded previews and tiles (LRU)",
    )
    events_poll_seconds: float = Field(
        default=0.5,
        gt=0,
        description="how often a live progress stream (`/v1/animations/{id}/events`) reads "
        "the progress the workers record",
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
        default=1000,
        ge=1,
        le=1500,
        description="render activities one workflow schedules at once; a task's chunks all "
        "enter the render queue together up to it, which is what serves tasks first come, "
        "first served (Temporal refuses more than 2000 pending activities per workflow)",
    )
    render_checkpoint_seconds: float = Field(
        default=15.0,
        gt=0,
        description="a chunk rendering longer than this is stored in parts of about this "
        "long; a retry after a lost worker resumes after the last part stored",
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
        "(default: one per core); the API's admission assumes a worker renders this many "
        "chunks at once",
    )
    worker_bookkeeping_slots: int = Field(
        default=4,
        ge=1,
        description="concurrent bookkeeping activities per worker (state updates, joins, "
        "posters, clean-up), on a task queue of their own beside the chunks",
    )
    worker_scratch_dir: Path | None = Field(
        default=None,
        description="where workers keep temporary files (default `<temp dir>/fractal-scratch`); "
        "a worker deletes at start what workers that are gone left there",
    )
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU priority of renders, so an API on the same host stays responsive",
    )
    worker_shutdown_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="on SIGTERM, how long the worker waits for its running activities to "
        "stop (they stop at the next frame and are retried elsewhere) before it cancels "
        "them; the chart derives the pod's grace period from it",
    )

    # -- observability --------------------------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text` (human readable, `fractal up`) or `json` (one object a line, "
        "with `request_id`, `user_id`, `task_id`, `workflow_id`, `trace_id` where known; "
        "the container image sets it)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="least severe log level written"
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="where the separate metrics listeners bind (the worker's, and the API's "
        "when `api_metrics_port` is set); the container image sets `0.0.0.0`",
    )
    api_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="0: the API serves `/metrics` on its own port; otherwise only on this "
        "port (the chart's choice, so the gateway never exposes it)",
    )
    worker_metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="the worker's Prometheus endpoint (`/metrics`: Temporal SDK and render "
        "metrics); 0 turns it off",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OpenTelemetry collector (OTLP over HTTP), e.g. `http://jaeger:4318`: "
        "traces go to `<endpoint>/v1/traces`; unset, tracing is off",
    )
    trace_sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="share of new traces recorded (a request's trace continues its caller's "
        "decision)",
    )

    @model_validator(mode="after")
    def _client_certificate_has_its_key(self) -> Settings:
        if (self.temporal_tls_client_cert_file is None) != (
            self.temporal_tls_client_key_file is None
        ):
            raise ValueError(
                "temporal_tls_client_cert_file and temporal_tls_client_key_file go together"
            )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"{proxy!r} is not an IP address or network (e.g. 10.244.0.0/16)"
                ) from None
        return proxies


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
