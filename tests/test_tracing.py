"""One trace per animation: the API's request span is the root, the workflow start, the
workflow run and every activity are its descendants. Proven in-process with an in-memory
span exporter: the real API (Postgres, Redis) and the real Temporal dev server, with a
worker whose activities are fakes (tests/test_workflow.py), wired with the same
interceptors the worker uses (``fractal.observability.temporal_interceptors``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from activities.render import activity_names
from activities.worker import render_workers
from fractal.observability import ContextFilter, temporal_interceptors
from fractal.settings import Settings
from fractal.temporal import connect_with, workflow_id_for
from tests.stack import make_settings, serve_api, sign_up_and_log_in
from tests.test_workflow import FakeActivities
from workflows.contracts import RenderChunkInput


class Records(logging.Handler):
    """Keeps the records that pass, after the project's context filter enriched them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("fractal")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture
def settings(tmp_path: Path, postgres_url: str, redis_url: str, temporal_address: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        temporal_task_queue=f"tracing-{uuid.uuid4().hex[:8]}",
    )


def by_name(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


def ancestors(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> list[str]:
    """The names from the span's parent up to the root of its trace."""
    names = []
    while span.parent is not None:
        parent = spans.get(span.parent.span_id)
        assert parent is not None, f"{span.name}: its parent span was never recorded"
        names.append(parent.name)
        span = parent
    return names


async def test_one_trace_from_the_request_through_the_workflow_and_every_activity(
    settings: Settings, records: Records
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    worker_log = logging.getLogger("fractal.worker")

    def render(chunk: RenderChunkInput) -> None:
        worker_log.info("rendering chunk %d", chunk.chunk_index)

    fakes = FakeActivities(render=render)
    client = await connect_with(settings, interceptors=temporal_interceptors(provider))
    with (
        ThreadPoolExecutor(max_workers=4) as executor,
        ThreadPoolExecutor(max_workers=4) as bookkeeping,
        serve_api(settings, tracing=provider) as base_url,
    ):
        workers = render_workers(
            client,
            settings.temporal_task_queue,
            [getattr(fakes, name) for name in activity_names()],
            render_executor=executor,
            bookkeeping_executor=bookkeeping,
            render_slots=4,
            bookkeeping_slots=4,
        )
        async with workers[0], workers[1]:

            def submit_and_wait() -> dict[str, Any]:
                with httpx.Client(base_url=base_url, timeout=30) as http:
                    headers = sign_up_and_log_in(http, f"tracer-{uuid.uuid4().hex[:8]}")
                    answer = http.post(
                        "/v1/animations",
                        json={"width": 64, "height": 48, "frames": 48},
                        headers={**headers, "X-Request-ID": "trace-test-1"},
                    )
                    assert answer.status_code == 202, answer.text
                    assert answer.headers["X-Request-ID"] == "trace-test-1"
                    task = answer.json()
                    return {"task": task, "user": headers}

            submitted = await asyncio.to_thread(submit_and_wait)
            task_id = submitted["task"]["id"]
            result = await client.get_workflow_handle(workflow_id_for(task_id)).result()
            assert result["frames"] == 12  # the fake join's answer: the workflow ran through

    spans = list(exporter.get_finished_spans())
    (request,) = [s for s in spans if s.name == "POST /v1/animations"]
    trace_id = request.context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    index = {s.context.span_id: s for s in in_trace}

    (start,) = by_name(in_trace, "StartWorkflow:RenderAnimationWorkflow")
    assert ancestors(start, index)[-1] == "POST /v1/animations"
    (run,) = by_name(in_trace, "RunWorkflow:RenderAnimationWorkflow")
    assert "StartWorkflow:RenderAnimationWorkflow" in ancestors(run, index)

    chunks = len(fakes.called("render_chunk"))
    assert chunks >= 2
    for activity_name, count in (
        ("render_chunk", chunks),
        ("join_segments", 1),
        ("write_poster", 1),
        ("update_task_state", 2),
        ("delete_segments", 1),
    ):
        executed = by_name(in_trace, f"RunActivity:{activity_name}")
        assert len(executed) == count, activity_name
        for span in executed:
            chain = ancestors(span, index)
            assert chain[0] == f"StartActivity:{activity_name}"
            assert "StartWorkflow:RenderAnimationWorkflow" in chain
            assert chain[-1] == "POST /v1/animations"
    # Nothing of this render escaped into a trace of its own.
    for span in spans:
        attributes = span.attributes or {}
        if workflow_id_for(task_id) in str(attributes.get("temporalWorkflowID", "")):
            assert span.context.trace_id == trace_id, span.name

    # The logs of both sides say which task they are about, and lead to the trace.
    queued = [r for r in records.records if r.getMessage().startswith(f"task {task_id} queued")]
    assert queued and queued[0].__dict__["request_id"] == "trace-test-1"
    assert queued[0].__dict__["task_id"] == task_id
    assert queued[0].__dict__["workflow_id"] == workflow_id_for(task_id)
    assert queued[0].__dict__["trace_id"] == format(trace_id, "032x")
    assert queued[0].__dict__["user_id"]
    rendering = [r for r in records.records if r.getMessage().startswith("rendering chunk")]
    assert len(rendering) == chunks
    for record in rendering:
        assert record.__dict__["task_id"] == task_id
        assert record.__dict__["workflow_id"] == workflow_id_for(task_id)
        assert record.__dict__["activity"] == "render_chunk"
        assert record.__dict__["trace_id"] == format(trace_id, "032x")


def test_tracing_is_off_without_an_endpoint() -> None:
    from fractal.observability import tracer_provider

    assert tracer_provider(Settings(_env_file=None), "fractal-api") is None  # type: ignore[call-arg]
    assert temporal_interceptors(None) == []
