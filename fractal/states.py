"""The life of a render task, shared by the workflow (sandboxed: standard library only),
the database models and the API."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATES

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


# Tuples, not sets: membership by equality, so plain strings from a database row match too.
ACTIVE_STATES = (TaskState.queued, TaskState.running)
FINAL_STATES = (TaskState.succeeded, TaskState.failed, TaskState.canceled)
