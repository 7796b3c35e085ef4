"""Connecting to Temporal (shared by the API, the worker and the CLI)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from temporalio.client import Client, Interceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from fractal.settings import Settings

WORKFLOW_ID_PREFIX = "render-"
# The second task queue of a render queue: the short steps that record, join and clean up,
# with slots of their own in every worker, so they never wait behind chunks being rendered.
BOOKKEEPING_QUEUE_SUFFIX = "-bookkeeping"


def workflow_id_for(task_id: str) -> str:
    """One workflow per task: a second start with the same id is refused by Temporal."""
    return f"{WORKFLOW_ID_PREFIX}{task_id}"


def bookkeeping_queue(task_queue: str) -> str:
    """The task queue of the render queue's bookkeeping activities (state updates, the join,
    the poster, clean-up)."""
    return f"{task_queue}{BOOKKEEPING_QUEUE_SUFFIX}"


def task_id_of(workflow_id: str) -> str | None:
    """The task a render workflow id belongs to; None for any other workflow."""
    if workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return workflow_id[len(WORKFLOW_ID_PREFIX) :]
    return None


def tls_config(settings: Settings) -> TLSConfig | bool:
    """What ``Client.connect(tls=...)`` gets: False (plaintext), True (TLS with the system's
    CAs) or a ``TLSConfig`` with the CA, client certificate and server name configured."""
    files = (
        settings.temporal_tls_server_ca_file,
        settings.temporal_tls_client_cert_file,
        settings.temporal_tls_client_key_file,
    )
    wanted = settings.temporal_tls or settings.temporal_api_key is not None
    if not wanted and not any(files) and not settings.temporal_tls_server_name:
        return False
    ca, cert, key = (path.read_bytes() if path else None for path in files)
    if not any((ca, cert, key, settings.temporal_tls_server_name)):
        return True
    return TLSConfig(
        server_root_ca_cert=ca,
        client_cert=cert,
        client_private_key=key,
        domain=settings.temporal_tls_server_name,
    )


def prometheus_runtime(
    host: str, port: int, histogram_buckets: Mapping[str, Sequence[float]] | None = None
) -> Runtime:
    """A Temporal runtime that serves its metrics, and any created on its ``metric_meter``,
    at ``http://host:port/metrics`` (Prometheus text format; durations in seconds,
    counters ending in ``_total``). Raises ``ValueError`` when the port is taken."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind,
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides=histogram_buckets,
            )
        )
    )


async def connect(
    address: str,
    namespace: str,
    *,
    timeout: float = 30.0,
    tls: TLSConfig | bool = False,
    api_key: str | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """Connect, retrying while the server starts (a fresh dev server takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = await Client.connect(
                address,
                namespace=namespace,
                tls=tls,
                api_key=api_key,
                interceptors=interceptors,
                runtime=runtime,
            )
            await client.service_client.check_health()
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def connect_with(
    settings: Settings,
    *,
    timeout: float = 30.0,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """``connect`` to the Temporal the settings name: address, namespace, TLS, API key."""
    api_key = settings.temporal_api_key
    return await connect(
        settings.temporal_address,
        settings.temporal_namespace,
        timeout=timeout,
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key else None,
        interceptors=interceptors,
        runtime=runtime,
    )
