"""Heartbeats from a background thread, for the whole of an activity's work.

An activity that heartbeats only between its steps (a frame, a downloaded segment) goes
silent during a long one (a deep frame, the concat of a 1080p video, its upload) and is
then taken for lost after the heartbeat timeout. ``heartbeating`` keeps the heartbeat going
from a thread of its own, every ``interval`` seconds, until the work ends: a live worker is
never mistaken for a dead one, and a dead one is noticed within the heartbeat timeout.

The thread runs in a copy of the activity's context (Temporal's activity context lives in
context variables), so ``activity.heartbeat`` there is the activity's own. A cancel reaches
the activity through these heartbeats too (``activity.is_cancelled()``).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

from temporalio import activity


@contextlib.contextmanager
def heartbeating(interval: float, details: Callable[[], Any] | None = None) -> Iterator[None]:
    """Heartbeat every ``interval`` seconds while the block runs (with ``details()`` when
    given); stops, and waits for the thread, when it ends."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            if details is None:
                activity.heartbeat()
            else:
                activity.heartbeat(details())

    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(beat,), name="activity-heartbeat", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def interval_for(heartbeat_timeout: float | None, default: float = 5.0) -> float:
    """How often to heartbeat: well within the timeout (a quarter), at most ``default``."""
    if not heartbeat_timeout:
        return default
    return max(0.05, min(default, heartbeat_timeout / 4))


def heartbeat_timeout() -> float | None:
    """The current activity's heartbeat timeout in seconds, if it has one."""
    timeout = activity.info().heartbeat_timeout
    return timeout.total_seconds() if timeout else None
