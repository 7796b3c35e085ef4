"""The Temporal worker: the render workflow plus the activities, sized to the machine.

``python -m activities.worker`` (or ``fractal worker``) runs it with the FRACTAL_*
settings. Activities run in a thread pool with one slot per core; each chunk encodes on
one thread, so slots x 1 thread keeps the cores busy without oversubscription.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.worker import Worker

from fractal.settings import Settings, get_settings

log = logging.getLogger("fractal.worker")


def activity_slots(settings: Settings) -> int:
    from fractal.engine import default_workers

    return settings.worker_activity_slots or default_workers()


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    from activities.render import WorkerActivities
    from fractal.db import make_engine, make_session_factory
    from fractal.engine import pin_mmap_threshold, warm_kernels
    from fractal.storage import make_store
    from fractal.temporal import connect
    from workflows.render import RenderAnimationWorkflow

    if not settings.database_url:
        raise SystemExit("FRACTAL_DATABASE_URL is required for the worker")
    pin_mmap_threshold()
    await asyncio.to_thread(warm_kernels)
    engine = make_engine(settings.database_url)
    activities = WorkerActivities(make_store(settings), make_session_factory(engine))
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    slots = activity_slots(settings)
    stop = stop or asyncio.Event()
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="activity") as executor:
        worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[RenderAnimationWorkflow],
            activities=activities.all(),
            activity_executor=executor,
            max_concurrent_activities=slots,
            graceful_shutdown_timeout=timedelta(seconds=10),
        )
        log.info(
            "worker on %s, queue %s, %d activity slots",
            settings.temporal_address,
            settings.temporal_task_queue,
            slots,
        )
        async with worker:
            await stop.wait()
    engine.dispose()


def main() -> None:
    # Parallelism comes from concurrent chunks (one thread each); a library spawning its
    # own thread pool per chunk on top would oversubscribe the cores.
    for variable in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        settings = get_settings()
        if settings.worker_nice and hasattr(os, "nice"):
            os.nice(settings.worker_nice)
        await run_worker(settings, stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
