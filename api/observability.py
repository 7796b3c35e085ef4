"""What the API tells its operators: Prometheus metrics, a request id on every answer, one
access log line per request, and (when tracing is on) a span per request.

``RequestObservability`` is a pure ASGI middleware, cheaper than Starlette's
``BaseHTTPMiddleware`` (no extra task per request). Metrics are labelled by route template
(``/v1/animations/{task_id}``), never by raw path: the route comes from the router's own
match (``scope["route"]``) after the request is served, so an unmatched path, a redirect
to a trailing slash or a task id can never add a series. prometheus-fastapi-instrumentator
was measured and not used for that reason: it labels a trailing-slash redirect with the
raw path (one series per task id) and re-matches every route per request.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fractal.observability import log_context

# The `_created` series (a timestamp per label set) double the output and no dashboard
# uses them.
disable_created_metrics()

log = logging.getLogger("fractal.api")
access_log = logging.getLogger("fractal.api.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's (or the gateway's) request id is kept when it is a sane token; anything else
# is replaced, so it can never inject into the logs or the answer's headers.
ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
# Probes and scrapes are logged at DEBUG: every few seconds, and never interesting.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Refusals of the admission model (422) and of the quotas (429), by what they protect.
TOO_COSTLY = "too_costly"  # CPU over the per-animation limit or the whole daily quota
TOO_MUCH_MEMORY = "too_much_memory"  # chunks a worker renders at once would not fit
TOO_LARGE_TO_STORE = "too_large_to_store"  # its video alone over the storage quota
CPU_QUOTA = "cpu_quota"  # the user's CPU-seconds of today are spent
STORAGE_QUOTA = "storage_quota"  # the user's stored and reserved bytes are at the quota
SUBMISSION_OUTCOMES = (
    "accepted",
    "rate_limited",
    TOO_COSTLY,
    TOO_MUCH_MEMORY,
    TOO_LARGE_TO_STORE,
    "too_many_active",
    CPU_QUOTA,
    STORAGE_QUOTA,
    "rate_limiter_unavailable",
    "storage_unavailable",
    "start_deferred",
    "error",
)


@dataclass
class ApiMetrics:
    """The API's metrics, in a registry of their own (one per app: tests build several)."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    in_flight: Gauge
    rate_limit_rejections: Counter
    submissions: Counter
    # What the watchdog (api/watchdog.py) sees and does.
    queue_pollers: Gauge
    queue_backlog: Gauge
    queue_backlog_age: Gauge
    temporal_reachable: Gauge
    storage_writable: Gauge
    active_tasks: Gauge
    waiting_tasks: Gauge
    tasks_ended: Counter

    @classmethod
    def create(cls) -> ApiMetrics:
        registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
        metrics = cls(
            registry=registry,
            requests=Counter(
                "fractal_api_requests",
                "HTTP requests answered, by method, route template and status code",
                ["method", "route", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "fractal_api_request_duration_seconds",
                "Time to answer an HTTP request, by method, route template and status code",
                ["method", "route", "status"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            in_flight=Gauge(
                "fractal_api_requests_in_flight",
                "HTTP requests being served now",
                registry=registry,
            ),
            rate_limit_rejections=Counter(
                "fractal_api_rate_limit_rejections",
                "Requests refused with 429 by a rate limit (rule: submit, auth, signup, login, "
                "preview or tile)",
                ["rule"],
                registry=registry,
            ),
            submissions=Counter(
                "fractal_api_submissions",
                "Animation submissions by outcome: " + ", ".join(SUBMISSION_OUTCOMES),
                ["outcome"],
                registry=registry,
            ),
            queue_pollers=Gauge(
                "fractal_task_queue_pollers",
                "Workers polling the task queue (seen within 75 s), by queue: workflows and "
                "chunks (the render queue), bookkeeping",
                ["queue"],
                registry=registry,
            ),
            queue_backlog=Gauge(
                "fractal_task_queue_backlog",
                "Tasks waiting in the task queue for a worker (Temporal's approximate count)",
                ["queue"],
                registry=registry,
            ),
            queue_backlog_age=Gauge(
                "fractal_task_queue_backlog_age_seconds",
                "How long the oldest task in the task queue has waited for a worker",
                ["queue"],
                registry=registry,
            ),
            temporal_reachable=Gauge(
                "fractal_temporal_reachable",
                "1 when Temporal answered the latest watchdog pass, else 0",
                registry=registry,
            ),
            storage_writable=Gauge(
                "fractal_storage_writable",
                "1 when the object store took the latest probe write, else 0",
                registry=registry,
            ),
            active_tasks=Gauge(
                "fractal_tasks_active",
                "Tasks queued or running (all users), by state",
                ["state"],
                registry=registry,
            ),
            waiting_tasks=Gauge(
                "fractal_tasks_waiting_for_worker",
                "Active tasks shown waiting for a worker (no worker, Temporal unreachable, "
                "or not started after FRACTAL_WORKER_WAIT_SECONDS)",
                registry=registry,
            ),
            tasks_ended=Counter(
                "fractal_api_tasks_ended",
                "Tasks the API ended itself, by state and reason: cancel_not_completed, "
                "waited_too_long, deadline, workflow_gone",
                ["state", "reason"],
                registry=registry,
            ),
        )
        for outcome in SUBMISSION_OUTCOMES:  # every outcome shows up at 0 from the start
            metrics.submissions.labels(outcome)
        for queue in ("workflows", "chunks", "bookkeeping"):
            for gauge in (metrics.queue_pollers, metrics.queue_backlog, metrics.queue_backlog_age):
                gauge.labels(queue)
        return metrics

    def exposition(self, accept: str | None) -> Response:
        encoder, content_type = choose_encoder(accept or "")
        return Response(encoder(self.registry), media_type=content_type)


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if ACCEPTED_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


# Answers given before the router ran (api/body_guard.py: body too large, too slow, not
# strict JSON): their route is looked up here, so they count under the route they were for.
ANSWERED_BEFORE_ROUTING = frozenset({408, 413, 422})


def route_of(scope: Scope, status: int | None = None) -> str:
    """The route template the router matched; a 405 on a known path still names it, and
    so does a body check's refusal, which no route saw."""
    route = scope.get("route")
    if route is None and status in ANSWERED_BEFORE_ROUTING:
        route = _matching_route(scope)
    return getattr(route, "path", None) or UNMATCHED_ROUTE


def _matching_route(scope: Scope) -> Any:
    for route in _routes(getattr(scope.get("app"), "router", None)):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def _routes(router: Any) -> Iterator[Any]:
    """Every route of ``router``, those of included routers too (FastAPI keeps an included
    router whole, as one entry whose ``original_router`` holds its routes)."""
    for route in getattr(router, "routes", ()):
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included)
        else:
            yield route


class RequestObservability:
    """Request id (taken from ``X-Request-ID`` or made up, echoed in the answer), the log
    context of the request, metrics and the access log line."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        status = 500
        started_response = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        metrics = self.metrics
        started = perf_counter()
        metrics.in_flight.inc()
        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_request_id)
            except Exception:
                # Answered here rather than by Starlette's last-resort handler, so that a
                # 500 also carries the request id, and its traceback is logged with it.
                log.exception("unhandled error in %s %s", scope["method"], scope["path"])
                if started_response:
                    raise
                answer = JSONResponse(
                    {"detail": "internal server error", "request_id": request_id}, 500
                )
                await answer(scope, receive, send_with_request_id)
            finally:
                elapsed = perf_counter() - started
                metrics.in_flight.dec()
                method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
                route = route_of(scope, status)
                code = str(status)
                metrics.requests.labels(method, route, code).inc()
                metrics.latency.labels(method, route, code).observe(elapsed)
                access_log.log(
                    logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                    "%s %s %d %.1f ms",
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed * 1000,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": _client(scope),
                    },
                )


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


async def metrics_endpoint(request: Request) -> Response:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics.exposition(request.headers.get("accept"))


def instrument_tracing(app: Any, provider: Any) -> None:
    """One server span per request (OpenTelemetry's FastAPI instrumentation), named by the
    route template; probes and scrapes are not traced."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls="/healthz,/readyz,/metrics",
        exclude_spans=["receive", "send"],
    )
