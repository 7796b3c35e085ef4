"""Metrics, request ids and structured logs, against the running test stack (API in a
thread, worker in a subprocess): what an operator scrapes and reads."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api.observability import ApiMetrics, RequestObservability
from fractal.cli.client import poll
from fractal.observability import ContextFilter, bind, configure_logging, log_context
from fractal.settings import Settings
from tests.stack import Stack, sign_up_and_log_in, wait_for_state

SMALL = {"width": 64, "height": 48, "frames": 24, "max_iter": 100}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus-client."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` that carry ``labels`` (and maybe others, such as
    the ``service_name`` the Temporal runtime adds)."""
    wanted = set(labels.items())
    return sum(
        sample
        for (sample_name, sample_labels), sample in samples(text).items()
        if sample_name == name and wanted <= set(sample_labels)
    )


@pytest.fixture
def client(local_stack: Stack) -> Iterator[httpx.Client]:
    with local_stack.client() as client:
        yield client


# --- the API's /metrics ------------------------------------------------------------------


def test_requests_are_counted_by_route_template_never_by_raw_path(
    client: httpx.Client,
) -> None:
    headers = sign_up_and_log_in(client, f"metrics-{uuid.uuid4().hex[:8]}")
    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    route = "/v1/animations/{task_id}"
    count = value(
        before.text, "fractal_api_requests_total", method="GET", route=route, status="404"
    )
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for task_id in ids:
        assert client.get(f"/v1/animations/{task_id}", headers=headers).status_code == 404
        # Neither a trailing-slash redirect nor an unknown path adds a series of its own.
        client.get(f"/v1/animations/{task_id}/", headers=headers)
        client.get(f"/no/such/{task_id}")
    after = client.get("/metrics").text
    assert not any(task_id in after for task_id in ids)
    assert (
        value(after, "fractal_api_requests_total", method="GET", route=route, status="404")
        == count + 5
    )
    assert value(
        after, "fractal_api_request_duration_seconds_count", method="GET", route=route, status="404"
    ) >= (count + 5)
    assert (
        value(after, "fractal_api_requests_total", method="GET", route="unmatched", status="404")
        >= 5
    )
    assert value(after, "fractal_api_requests_in_flight") == 1.0  # this very scrape
    assert value(after, "process_resident_memory_bytes") > 0


def test_the_body_checks_answers_are_counted_under_their_route_with_a_request_id(
    client: httpx.Client, local_stack: Stack
) -> None:
    """The body guard answers before any route runs; the observability middleware, outside
    it, still counts those answers under the route they were for and echoes the id."""
    json_type = {"Content-Type": "application/json"}
    before = client.get("/metrics").text
    too_large = client.post(
        "/v1/animations",
        content=b'"' + b"x" * local_stack.settings.max_body_bytes + b'"',
        headers={**json_type, "X-Request-ID": "guard-413"},
    )
    assert too_large.status_code == 413
    not_json = client.post(
        "/v1/auth/signup",
        content=b'{"username": NaN, "password": "pass-word-1"}',
        headers={**json_type, "X-Request-ID": "guard-422"},
    )
    assert not_json.status_code == 422
    for answer, request_id in ((too_large, "guard-413"), (not_json, "guard-422")):
        assert answer.headers["X-Request-ID"] == request_id
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"
    after = client.get("/metrics").text
    for route, status in (("/v1/animations", "413"), ("/v1/auth/signup", "422")):
        labels = {"method": "POST", "route": route, "status": status}
        counted = value(after, "fractal_api_requests_total", **labels)
        assert counted == value(before, "fractal_api_requests_total", **labels) + 1, route


def test_submissions_by_outcome_and_rate_limit_rejections(local_stack: Stack) -> None:
    from api.animation_service import cost_estimate
    from fractal.embedded import free_port
    from fractal.spec import AnimationSpec
    from tests.stack import make_settings, serve_api

    # A limit per animation that SMALL passes and ten times its frames does not.
    small_cost = cost_estimate(local_stack.settings, AnimationSpec.model_validate(SMALL))
    too_costly = {**SMALL, "frames": 10 * SMALL["frames"]}

    # A stack of its own with a tiny submission bucket, on the same servers.
    settings = make_settings(
        local_stack.settings.data_dir / f"limited-{uuid.uuid4().hex[:6]}",
        **{
            name: getattr(local_stack.settings, name)
            for name in ("database_url", "redis_url", "temporal_address", "storage")
        },
        api_port=free_port(),
        temporal_task_queue=local_stack.settings.temporal_task_queue,
        submissions_per_minute=1,
        submission_burst=2,
        max_task_cpu_seconds=2 * small_cost.cpu_seconds,
    )
    settings.data_dir.mkdir(parents=True)
    with serve_api(settings) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        headers = sign_up_and_log_in(client, f"outcomes-{uuid.uuid4().hex[:8]}")
        refused = client.post("/v1/animations", json=too_costly, headers=headers)
        assert refused.status_code == 422 and "too costly" in refused.json()["detail"]
        accepted = client.post("/v1/animations", json=SMALL, headers=headers)
        assert accepted.status_code == 202
        assert client.post("/v1/animations", json=SMALL, headers=headers).status_code == 429
        text = client.get("/metrics").text
        # Rendered by the shared worker: let it finish before the next test counts frames.
        wait_for_state(client, headers, accepted.json()["id"], {"succeeded"})
    assert value(text, "fractal_api_submissions_total", outcome="too_costly") == 1
    for outcome in ("too_much_memory", "too_large_to_store", "cpu_quota", "storage_quota"):
        assert value(text, "fractal_api_submissions_total", outcome=outcome) == 0
    assert value(text, "fractal_api_submissions_total", outcome="accepted") == 1
    assert value(text, "fractal_api_submissions_total", outcome="rate_limited") == 1
    assert value(text, "fractal_api_submissions_total", outcome="start_deferred") == 0
    assert value(text, "fractal_api_rate_limit_rejections_total", rule="submit") == 1
    route = {"method": "POST", "route": "/v1/animations"}
    assert value(text, "fractal_api_requests_total", **route, status="429") == 1


def test_the_metrics_port_setting_moves_metrics_off_the_api_port(local_stack: Stack) -> None:
    from fractal.embedded import free_port
    from tests.stack import make_settings, serve_api

    metrics_port = free_port()
    settings = make_settings(
        local_stack.settings.data_dir / f"metrics-port-{uuid.uuid4().hex[:6]}",
        database_url=local_stack.settings.database_url,
        redis_url=local_stack.settings.redis_url,
        temporal_address=local_stack.settings.temporal_address,
        api_metrics_port=metrics_port,
    )
    settings.data_dir.mkdir(parents=True)
    with serve_api(settings) as base_url:
        assert httpx.get(f"{base_url}/healthz").status_code == 200
        assert httpx.get(f"{base_url}/metrics").status_code == 404
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert (
            value(text, "fractal_api_requests_total", method="GET", route="/healthz", status="200")
            == 1
        )
    with pytest.raises(httpx.ConnectError):  # closed with the API
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")


# --- the worker's /metrics -------------------------------------------------------------


def scrape_when_up(url: str, timeout: float = 60) -> str:
    """The worker serves metrics once it has warmed its kernels and connected."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url).text
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_worker_serves_temporal_sdk_and_render_metrics(
    local_stack: Stack, client: httpx.Client
) -> None:
    url = f"http://127.0.0.1:{local_stack.live_worker_metrics_port()}/metrics"
    before = scrape_when_up(url)
    headers = sign_up_and_log_in(client, f"worker-metrics-{uuid.uuid4().hex[:8]}")
    task = client.post("/v1/animations", json=SMALL, headers=headers).json()
    task = wait_for_state(client, headers, task["id"], {"succeeded", "failed", "canceled"})
    assert task["state"] == "succeeded", task
    # The row says succeeded once the result is committed; the workflow completes after
    # deleting its inputs, a moment later.
    after = poll(
        lambda: httpx.get(url).text,
        lambda text: (
            value(text, "temporal_workflow_completed_total")
            > value(before, "temporal_workflow_completed_total")
        ),
        timeout=30,
        interval=0.2,
    )
    frames = value(after, "fractal_render_frames_total") - value(
        before, "fractal_render_frames_total"
    )
    assert frames == SMALL["frames"]
    video_bytes = value(after, "fractal_render_bytes_written_total", kind="video")
    assert (
        video_bytes - value(before, "fractal_render_bytes_written_total", kind="video")
        == (task["video_size"])
    )
    for name in (
        "fractal_render_kernel_seconds_sum",
        "fractal_render_encode_seconds_sum",
        "fractal_render_chunk_duration_seconds_count",
        "fractal_render_join_duration_seconds_count",
    ):
        assert value(after, name) > value(before, name), name
    assert value(after, "fractal_render_active_chunks") == 0
    # The SDK's own metrics come from the same endpoint (PrometheusConfig), and every one
    # the chart's Grafana dashboard plots is among them.
    from tests.test_deploy_operations import dashboard_metric_names

    names = {name for name, _ in samples(after)}
    plotted = {name for name in dashboard_metric_names() if name.startswith("temporal_")}
    assert plotted and plotted <= names, plotted - names
    plotted_render = {name for name in dashboard_metric_names() if name.startswith("fractal_")}
    plotted_render -= {n for n in plotted_render if n.startswith("fractal_api_")}
    assert plotted_render <= names, plotted_render - names


def test_a_taken_worker_metrics_port_stops_the_worker_with_a_clear_message() -> None:
    import socket

    from activities.worker import metrics_runtime

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = Settings(worker_metrics_port=port, _env_file=None)  # type: ignore[call-arg]
        with pytest.raises(SystemExit, match=f"127.0.0.1:{port}.*FRACTAL_WORKER_METRICS_PORT"):
            metrics_runtime(settings)
    off = Settings(worker_metrics_port=0, _env_file=None)  # type: ignore[call-arg]
    assert metrics_runtime(off) is None


# --- request ids -----------------------------------------------------------------------


def test_every_answer_carries_a_request_id(client: httpx.Client) -> None:
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != client.get("/healthz").headers["X-Request-ID"]
    assert client.get("/nowhere").headers["X-Request-ID"]  # a 404 too
    kept = client.get("/healthz", headers={"X-Request-ID": "gw-1234.abc"})
    assert kept.headers["X-Request-ID"] == "gw-1234.abc"
    for hostile in (b"a b", b"x" * 200, b"tab\tin", "\u00e9t\u00e9".encode("latin-1"), b"{}$"):
        answer = client.get("/healthz", headers={b"X-Request-ID": hostile})
        assert len(answer.headers["X-Request-ID"]) == 32, hostile


async def test_an_unhandled_error_is_a_500_with_the_request_id_and_a_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()

    @app.get("/boom/{item}")
    def boom(item: str) -> None:
        raise RuntimeError("kaput")

    metrics = ApiMetrics.create()
    app.add_middleware(RequestObservability, metrics=metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/boom/1", headers={"X-Request-ID": "req-500"})
    assert answer.status_code == 500
    assert answer.headers["X-Request-ID"] == "req-500"
    assert answer.json() == {"detail": "internal server error", "request_id": "req-500"}
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.exc_info and "kaput" in str(error.exc_info[1])
    text = bytes(metrics.exposition(None).body).decode()
    labels = {"method": "GET", "route": "/boom/{item}", "status": "500"}
    assert value(text, "fractal_api_requests_total", **labels) == 1


# --- logs ------------------------------------------------------------------------------


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def test_json_logs_carry_the_context(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="json", _env_file=None), stream)  # type: ignore[call-arg]
    log = logging.getLogger("fractal.test")
    log.info("outside any request")
    with log_context(request_id="r-1"):
        bind(user_id="u-1", task_id="t-1")
        log.info("inside %s", "a request", extra={"route": "/x"})
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed")
    outside, inside, failed = json_lines(stream)
    assert outside["message"] == "outside any request" and outside["level"] == "INFO"
    assert outside["logger"] == "fractal.test" and "time" in outside
    assert "request_id" not in outside and "task_id" not in outside
    assert inside["message"] == "inside a request"
    assert (inside["request_id"], inside["user_id"], inside["task_id"]) == ("r-1", "u-1", "t-1")
    assert inside["route"] == "/x"
    assert failed["level"] == "ERROR" and "ValueError: bad" in str(failed["exc_info"])


def test_text_logs_stay_readable(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="text", _env_file=None), stream)  # type: ignore[call-arg]
    with log_context(request_id="r-2"):
        bind(task_id="t-2")
        logging.getLogger("fractal.test").warning("slow render")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("WARNING fractal.test: slow render  request_id=r-2 task_id=t-2")


def test_the_api_logs_one_access_line_per_request_with_its_context(
    local_stack: Stack, client: httpx.Client
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    from fractal.observability import json_formatter

    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    access = logging.getLogger("fractal.api.access")
    access.addHandler(handler)
    previous = access.level
    access.setLevel(logging.INFO)
    try:
        headers = sign_up_and_log_in(client, f"access-{uuid.uuid4().hex[:8]}")
        task_id = str(uuid.uuid4())
        client.get(f"/v1/animations/{task_id}", headers={**headers, "X-Request-ID": "acc-1"})
        client.get("/healthz")  # probes are DEBUG: not written at INFO
    finally:
        access.removeHandler(handler)
        access.setLevel(previous)
    lines = json_lines(stream)
    (line,) = [entry for entry in lines if entry.get("request_id") == "acc-1"]
    assert line["route"] == "/v1/animations/{task_id}" and line["status"] == 404
    assert line["method"] == "GET" and line["path"] == f"/v1/animations/{task_id}"
    assert isinstance(line["duration_ms"], float) and line["user_id"]
    assert not [entry for entry in lines if entry.get("route") == "/healthz"]


# --- Temporal over TLS ---------------------------------------------------------------------


def test_temporal_tls_settings_build_the_client_tls_config(tmp_path: Path) -> None:
    from temporalio.service import TLSConfig

    from fractal.temporal import tls_config

    def settings(**values: object) -> Settings:
        return Settings.model_validate({"_env_file": None, **values})

    assert tls_config(settings()) is False
    assert tls_config(settings(temporal_tls=True)) is True
    assert tls_config(settings(temporal_api_key="key")) is True  # an API key implies TLS
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "cert.pem", "key.pem"))
    for path in (ca, cert, key):
        path.write_bytes(f"-----BEGIN {path.stem}-----".encode())
    config = tls_config(
        settings(
            temporal_tls_server_ca_file=ca,
            temporal_tls_client_cert_file=cert,
            temporal_tls_client_key_file=key,
            temporal_tls_server_name="frontend.example",
        )
    )
    assert isinstance(config, TLSConfig)
    assert config.server_root_ca_cert == ca.read_bytes()
    assert (config.client_cert, config.client_private_key) == (cert.read_bytes(), key.read_bytes())
    assert config.domain == "frontend.example"
    with pytest.raises(ValueError, match="go together"):
        settings(temporal_tls_client_cert_file=cert)


async def test_a_tls_client_does_not_talk_plaintext_to_temporal(temporal_address: str) -> None:
    """The TLS setting reaches the connection: the plaintext dev server cannot be used."""
    from fractal.temporal import connect_with

    plain = Settings(temporal_address=temporal_address, _env_file=None)  # type: ignore[call-arg]
    await connect_with(plain, timeout=10)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's error type for a TLS mismatch varies
        await connect_with(plain.model_copy(update={"temporal_tls": True}), timeout=1)


def test_failed_render_attempts_are_counted_by_reason() -> None:
    from temporalio.exceptions import ApplicationError, CancelledError

    from activities.metrics import HISTOGRAM_BUCKETS, RenderMetrics
    from activities.render import WorkerActivities, WorkerShuttingDown, _failure_reason
    from fractal.embedded import free_port
    from fractal.temporal import prometheus_runtime
    from workflows.contracts import INVALID_SPEC_ERROR, RenderChunkInput

    assert _failure_reason(ApplicationError("x", type=INVALID_SPEC_ERROR)) == "invalid_spec"
    assert _failure_reason(WorkerShuttingDown("x")) == "worker_shutdown"
    assert _failure_reason(CancelledError("x")) == "cancelled"
    assert _failure_reason(ConnectionResetError()) == "storage"
    assert _failure_reason(ZeroDivisionError()) == "error"

    port = free_port()
    runtime = prometheus_runtime("127.0.0.1", port, HISTOGRAM_BUCKETS)
    activities = WorkerActivities(None, None, RenderMetrics(runtime.metric_meter))  # type: ignore[arg-type]
    chunk = RenderChunkInput(str(uuid.uuid4()), {"width": -1}, 0, 0, 1)
    with pytest.raises(ApplicationError, match="invalid animation spec"):
        activities.render_chunk(chunk)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert value(text, "fractal_render_failures_total", reason="invalid_spec") == 1
    assert value(text, "fractal_render_failures_total", reason="error") == 0
    assert value(text, "fractal_render_active_chunks") == 0
