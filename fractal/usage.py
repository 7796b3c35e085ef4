"""What each user has spent: CPU-seconds per UTC day and bytes of stored video, in Postgres.

A submission reserves its estimate (``fractal.admission``) on the day it is made; when the
task ends, ``settle_task`` replaces the reservation with the CPU its chunks measured. The
daily figures live in ``cpu_usage``, apart from the tasks, so deleting a task does not give
its CPU back. Stored bytes are counted from the tasks themselves: finished videos at their
size, queued and running ones at their estimate.

Callers hold the user's row lock (``SELECT ... FOR UPDATE``) around check-and-reserve, so
concurrent submissions of one user are counted one at a time.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from fractal.db import CpuUsage, Task, TaskChunk
from fractal.states import ACTIVE_STATES, FINAL_STATES


def utc_day(moment: datetime) -> date:
    return moment.date()


def cpu_used(session: Session, user_id: uuid.UUID, day: date) -> float:
    used = session.scalar(
        select(CpuUsage.cpu_seconds).where(CpuUsage.user_id == user_id, CpuUsage.day == day)
    )
    return float(used or 0.0)


def charge_cpu(session: Session, user_id: uuid.UUID, day: date, seconds: float) -> None:
    """Add ``seconds`` (negative to give back) to the user's day; never below zero."""
    statement = insert(CpuUsage).values(user_id=user_id, day=day, cpu_seconds=max(0.0, seconds))
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[CpuUsage.user_id, CpuUsage.day],
            set_={"cpu_seconds": func.greatest(0.0, CpuUsage.cpu_seconds + seconds)},
        )
    )


def stored_bytes(session: Session, user_id: uuid.UUID) -> int:
    """Finished videos at their size plus queued and running tasks at their estimate."""
    finished = session.scalar(
        select(func.coalesce(func.sum(Task.video_size), 0)).where(
            Task.owner_id == user_id, Task.video_key.is_not(None)
        )
    )
    reserved = session.scalar(
        select(func.coalesce(func.sum(Task.estimated_bytes), 0)).where(
            Task.owner_id == user_id, Task.state.in_(ACTIVE_STATES)
        )
    )
    return int(finished or 0) + int(reserved or 0)


def measured_cpu(session: Session, task_id: uuid.UUID) -> float:
    total = session.scalar(
        select(func.coalesce(func.sum(TaskChunk.cpu_seconds), 0.0)).where(
            TaskChunk.task_id == task_id
        )
    )
    return float(total or 0.0)


def settle_task(session: Session, task: Task) -> None:
    """A task just became final: charge what its chunks measured instead of its estimate."""
    if task.cpu_seconds is not None or task.state not in FINAL_STATES:
        return
    task.cpu_seconds = measured_cpu(session, task.id)
    charge_cpu(
        session,
        task.owner_id,
        utc_day(task.created_at),
        task.cpu_seconds - task.estimated_cpu_seconds,
    )
