"""The Temporal worker: the render workflow plus the activities, sized to the machine.

``python -m activities.worker`` (or ``fractal worker``) runs it with the FRACTAL_*
settings. It polls two task queues: the render queue (the workflow's tasks and the chunks,
in a thread pool with one slot per core; each chunk encodes on one thread, so slots x 1
thread keeps the cores busy without oversubscription) and its bookkeeping queue (state
updates, the join, the poster, clean-up) with a few slots of their own, so recording that
a task runs or finished never waits behind chunks of other tasks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from fractal.settings import Settings, get_settings

log = logging.getLogger("fractal.worker")


def activity_slots(settings: Settings) -> int:
    from fractal.engine import default_workers

    return settings.worker_activity_slots or default_workers()


def metrics_runtime(settings: Settings) -> Any:
    """The Temporal runtime serving the worker's ``/metrics`` (SDK and render metrics) on
    ``FRACTAL_WORKER_METRICS_PORT``; None when that is 0."""
    from activities.metrics import HISTOGRAM_BUCKETS
    from fractal.temporal import prometheus_runtime

    if not settings.worker_metrics_port:
        return None
    try:
        return prometheus_runtime(
            settings.metrics_host, settings.worker_metrics_port, HISTOGRAM_BUCKETS
        )
    except ValueError as error:
        raise SystemExit(
            f"worker metrics on {settings.metrics_host}:{settings.worker_metrics_port}: {error} "
            "(set FRACTAL_WORKER_METRICS_PORT to a free port, or 0 to turn the endpoint off)"
        ) from None


# A workflow task the dead worker cached (sticky) moves to the normal queue after this, so
# a worker lost between two steps of a render costs seconds, not ten (the SDK default).
STICKY_TIMEOUT = timedelta(seconds=2)


def render_workers(
    client: Client,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    *,
    render_executor: ThreadPoolExecutor,
    bookkeeping_executor: ThreadPoolExecutor,
    render_slots: int,
    bookkeeping_slots: int,
    graceful_shutdown_timeout: timedelta = timedelta(),
) -> list[Worker]:
    """The two workers of one worker process: the render queue (workflows and chunks) and
    its bookkeeping queue. Every activity is served on both: workflows started before the
    bookkeeping queue existed schedule everything on the render queue."""
    from fractal.temporal import bookkeeping_queue
    from workflows.render import RenderAnimationWorkflow

    return [
        Worker(
            client,
            task_queue=task_queue,
            workflows=[RenderAnimationWorkflow],
            activities=list(activities),
            activity_executor=render_executor,
            max_concurrent_activities=render_slots,
            sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
            graceful_shutdown_timeout=graceful_shutdown_timeout,
        ),
        Worker(
            client,
            task_queue=bookkeeping_queue(task_queue),
            activities=list(activities),
            activity_executor=bookkeeping_executor,
            max_concurrent_activities=bookkeeping_slots,
            graceful_shutdown_timeout=graceful_shutdown_timeout,
        ),
    ]


async def run_worker(
    settings: Settings, stop: asyncio.Event | None = None, *, tracing: Any = None
) -> None:
    """Poll the task queue until ``stop`` is set. ``tracing``: a TracerProvider to trace
    with; by default one exporting to ``FRACTAL_OTLP_ENDPOINT``, or none."""
    from activities.metrics import RenderMetrics
    from activities.render import WorkerActivities
    from activities.scratch import Scratch, default_scratch_root
    from fractal.db import make_engine, make_session_factory
    from fractal.engine import pin_mmap_threshold, warm_kernels
    from fractal.observability import shutdown_tracing, temporal_interceptors, tracer_provider
    from fractal.storage import make_store
    from fractal.temporal import bookkeeping_queue, connect_with

    if not settings.database_url:
        raise SystemExit("FRACTAL_DATABASE_URL is required for the worker")
    runtime = metrics_runtime(settings)
    owns_tracing = tracing is None
    provider = tracer_provider(settings, "fractal-worker") if owns_tracing else tracing
    pin_mmap_threshold()
    await asyncio.to_thread(warm_kernels)
    engine = make_engine(settings.database_url)
    metrics = RenderMetrics(runtime.metric_meter) if runtime is not None else RenderMetrics()
    scratch = Scratch(settings.worker_scratch_dir or default_scratch_root())
    # What workers killed on this host left behind (a chunk, a join): theirs alone.
    scratch.sweep_abandoned()
    activities = WorkerActivities(
        make_store(settings),
        make_session_factory(engine),
        metrics,
        scratch=scratch,
        checkpoint_seconds=settings.render_checkpoint_seconds,
    )
    # The client's interceptors apply to the worker too: workflow and activity spans
    # continue the trace of the request that started the workflow.
    client = await connect_with(
        settings, interceptors=temporal_interceptors(provider), runtime=runtime
    )
    slots = activity_slots(settings)
    stop = stop or asyncio.Event()
    bookkeeping_slots = settings.worker_bookkeeping_slots
    with (
        ThreadPoolExecutor(max_workers=slots, thread_name_prefix="activity") as executor,
        ThreadPoolExecutor(
            max_workers=bookkeeping_slots, thread_name_prefix="bookkeeping"
        ) as bookkeeping_executor,
    ):
        workers = render_workers(
            client,
            settings.temporal_task_queue,
            activities.all(),
            render_executor=executor,
            bookkeeping_executor=bookkeeping_executor,
            render_slots=slots,
            bookkeeping_slots=bookkeeping_slots,
            graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_timeout_seconds),
        )
        log.info(
            "worker on %s, queues %s (%d activity slots) and %s (%d)%s",
            settings.temporal_address,
            settings.temporal_task_queue,
            slots,
            bookkeeping_queue(settings.temporal_task_queue),
            bookkeeping_slots,
            f", metrics on http://{settings.metrics_host}:{settings.worker_metrics_port}/metrics"
            if runtime is not None
            else "",
        )
        async with workers[0], workers[1]:
            await stop.wait()
            log.info(
                "stopping: running activities get %.0f s", settings.worker_shutdown_timeout_seconds
            )
    scratch.close()
    engine.dispose()
    if owns_tracing:
        shutdown_tracing(provider)


def main() -> None:
    # Parallelism comes from concurrent chunks (one thread each); a library spawning its
    # own thread pool per chunk on top would oversubscribe the cores.
    for variable in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    from fractal.observability import configure_logging

    settings = get_settings()
    configure_logging(settings)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if settings.worker_nice and hasattr(os, "nice"):
            os.nice(settings.worker_nice)
        await run_worker(settings, stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
