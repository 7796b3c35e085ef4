"""What Temporal says about the render task queues, and what it means for a task.

Every API process asks Temporal (``DescribeTaskQueue``) about the render queue's workflow
and activity tasks and about its bookkeeping queue every ``FRACTAL_WATCHDOG_INTERVAL_SECONDS``
(api/watchdog.py): how many workers poll them, how many tasks wait and for how long. The
last answer is kept here, in memory, so that reading a task, ``/readyz`` and ``/metrics``
never call Temporal themselves.

A worker long-polls each queue (a poll lasts up to a minute on an idle queue), so a worker
counts as alive while one of its polls was seen within ``POLLER_FRESH_SECONDS``; a worker
whose activity slots are all busy stops polling for activities but keeps polling for
workflow tasks, which is why the render queue's workflow pollers say whether any worker
is there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from fractal.states import ACTIVE_STATES, TaskState

# Longer than a long poll (60 s on Temporal's defaults) plus slack.
POLLER_FRESH_SECONDS = 75.0


class QueueKind(StrEnum):
    """The queues watched: the render queue's workflow tasks and chunks, and the
    bookkeeping queue (state updates, joins, posters, clean-up)."""

    workflows = "workflows"
    chunks = "chunks"
    bookkeeping = "bookkeeping"


@dataclass(frozen=True)
class QueueState:
    pollers: int  # workers seen polling within POLLER_FRESH_SECONDS
    backlog: int  # tasks waiting for a worker (approximate)
    backlog_age_seconds: float  # how long the oldest of them has waited
    last_poll: datetime | None  # the latest poll seen from any worker


class WaitReason(StrEnum):
    no_worker = "no_worker"
    render_service_unavailable = "render_service_unavailable"
    not_started = "not_started"


WAIT_MESSAGES = {
    WaitReason.no_worker: "waiting for a worker: none is running",
    WaitReason.render_service_unavailable: "waiting for the render service (Temporal), "
    "which is unreachable",
    WaitReason.not_started: "waiting for a worker to start it",
}


@dataclass(frozen=True)
class Waiting:
    reason: WaitReason
    since: datetime

    @property
    def message(self) -> str:
        return WAIT_MESSAGES[self.reason]


@dataclass
class QueueHealth:
    """The latest answer about the queues (shared by the requests of one API process)."""

    checked_at: datetime | None = None
    queues: dict[QueueKind, QueueState] = field(default_factory=dict)
    # Since when no worker polls the render queue / Temporal does not answer (None: fine).
    no_worker_since: datetime | None = None
    unreachable_since: datetime | None = None
    # The object store's latest write probe (None: not probed yet).
    storage_writable: bool | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def workers(self) -> int | None:
        """Workers polling the render queue; None when Temporal was not reached."""
        state = self.queues.get(QueueKind.workflows)
        return None if state is None or self.unreachable_since else state.pollers

    def observed(self, now: datetime, queues: dict[QueueKind, QueueState]) -> None:
        with self._lock:
            self.checked_at, self.queues, self.unreachable_since = now, queues, None
            if queues[QueueKind.workflows].pollers or queues[QueueKind.chunks].pollers:
                self.no_worker_since = None
            elif self.no_worker_since is None:
                # Since the last poll any worker made (or since now, if none was ever seen).
                seen = [state.last_poll for state in queues.values() if state.last_poll]
                self.no_worker_since = max(seen) if seen else now

    def unreachable(self, now: datetime) -> None:
        with self._lock:
            self.checked_at = now
            if self.unreachable_since is None:
                self.unreachable_since = now

    def waiting(
        self, state: str, created_at: datetime, now: datetime, wait: timedelta
    ) -> Waiting | None:
        """Why an active task has no worker, once it has waited longer than ``wait``; None
        when it does not wait (or not that long)."""
        if state not in ACTIVE_STATES:
            return None
        for reason, since in (
            (WaitReason.render_service_unavailable, self.unreachable_since),
            (WaitReason.no_worker, self.no_worker_since),
        ):
            if since is not None:
                since = max(since, created_at)
                if now - since >= wait:
                    return Waiting(reason, since)
        if state == TaskState.queued and now - created_at >= wait:
            return Waiting(WaitReason.not_started, created_at)
        return None
