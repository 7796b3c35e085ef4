"""Logs and traces of every process: structured log lines that carry the request, user,
task and workflow they belong to, and OpenTelemetry tracing exported over OTLP.

``configure_logging(settings)`` installs one handler on the root logger: human-readable
lines (``fractal up``) or one JSON object per line (``FRACTAL_LOG_FORMAT=json``, the
container image). Every record is enriched with what is known where it is logged:

- ``request_id``, ``user_id``, ``task_id``: bound by the API for the request being served
  (``log_context`` / ``bind``);
- ``workflow_id``, ``task_id``, ``activity``: inside a Temporal activity, from its info;
- ``trace_id``, ``span_id``: the current OpenTelemetry span, so a log line leads to its
  trace.

``tracer_provider(settings, service)`` is None unless ``FRACTAL_OTLP_ENDPOINT`` is set:
tracing costs nothing when it is off.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, fields
from importlib import metadata
from typing import Any

from opentelemetry import trace
from temporalio import activity, workflow
from temporalio.client import Interceptor

from fractal.settings import Settings
from fractal.temporal import task_id_of

CONTEXT_FIELDS = ("request_id", "user_id", "task_id", "workflow_id", "activity")


@dataclass
class LogContext:
    """What the current unit of work (an HTTP request) is about. Mutable on purpose: the
    request's middleware creates it, and the dependencies and services that learn the
    user or the task fill it in, even from the worker threads FastAPI runs them in (each
    sees a copy of the context, holding this same object)."""

    request_id: str | None = None
    user_id: str | None = None
    task_id: str | None = None
    workflow_id: str | None = None


_current: ContextVar[LogContext | None] = ContextVar("fractal_log_context", default=None)


@contextlib.contextmanager
def log_context(**values: str | None) -> Iterator[LogContext]:
    """A fresh ``LogContext`` for the block (one per request)."""
    context = LogContext(**values)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def bind(**values: object) -> None:
    """Add what became known (``user_id=...``, ``task_id=...``) to the current context."""
    context = _current.get()
    if context is None:
        return
    for name, value in values.items():
        setattr(context, name, None if value is None else str(value))


def current_context() -> LogContext | None:
    return _current.get()


class ContextFilter(logging.Filter):
    """Sets the context fields and the trace ids on every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        found: dict[str, str] = {}
        context = _current.get()
        if context is not None:
            found.update(
                {f.name: value for f in fields(context) if (value := getattr(context, f.name))}
            )
        temporal = _temporal_fields(record)
        for name, value in temporal.items():
            found.setdefault(name, value)
        if "task_id" not in found and "workflow_id" in found:
            task_id = task_id_of(found["workflow_id"])
            if task_id:
                found["task_id"] = task_id
        found.update(_trace_fields())
        for name, value in found.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _temporal_fields(record: logging.LogRecord) -> dict[str, str]:
    """The workflow (and activity) a record comes from: Temporal's own loggers put their
    info on the record; any other logger called inside an activity is found through it."""
    info: dict[str, Any] | None = getattr(record, "temporal_activity", None) or getattr(
        record, "temporal_workflow", None
    )
    if info:
        found = {"workflow_id": str(info.get("workflow_id", ""))}
        if "activity_type" in info:
            found["activity"] = str(info["activity_type"])
        return {name: value for name, value in found.items() if value}
    if activity.in_activity():
        current = activity.info()
        return {"workflow_id": current.workflow_id or "", "activity": current.activity_type}
    return {}


def _trace_fields() -> dict[str, str]:
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": format(span_context.trace_id, "032x"),
        "span_id": format(span_context.span_id, "016x"),
    }


class TextFormatter(logging.Formatter):
    """``2025-01-01 12:00:00,000 INFO fractal.api: message  task_id=... request_id=...``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [
            f"{name}={value}"
            for name in (*CONTEXT_FIELDS, "trace_id")
            if (value := getattr(record, name, None))
        ]
        if not extra:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the line
        return f"{head}  {' '.join(extra)}{newline}{rest}"


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        # Temporal's loggers attach their whole info dict; the ids above are enough.
        reserved_attrs=[
            *logging.LogRecord("", 0, "", 0, None, None, None).__dict__,
            "message",
            "asctime",
            "temporal_activity",
            "temporal_workflow",
            "color_message",  # uvicorn's coloured copy of the message
        ],
    )


def configure_logging(settings: Settings, stream: Any = None) -> logging.Handler:
    """One handler on the root logger, in the settings' format and level; returns it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for previous in list(root.handlers):
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # The ids are fields of the record; Temporal's default copy of its info into the
    # message would only repeat them.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
    return handler


# -- tracing ---------------------------------------------------------------------------


def service_version() -> str:
    try:
        return metadata.version("fractal-animation-server")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def tracer_provider(settings: Settings, service: str) -> Any:
    """A TracerProvider exporting to ``settings.otlp_endpoint`` (OTLP/HTTP, batched), made
    the global one; None when no endpoint is set. ``service`` names the process in the
    traces (``fractal-api``, ``fractal-worker``); ``OTEL_RESOURCE_ATTRIBUTES`` adds more."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.version": service_version()}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def temporal_interceptors(provider: Any) -> Sequence[Interceptor]:
    """Client (and worker) interceptors that carry the trace across Temporal: the span of
    the request that starts a workflow becomes the parent of the workflow's and of every
    activity's spans. None without a provider."""
    if provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(provider.get_tracer("fractal.temporal"))]


def shutdown_tracing(provider: Any) -> None:
    """Flush the spans still batched (a process that exits would lose them)."""
    if provider is not None:
        provider.shutdown()
