"""Database models and sessions (SQLAlchemy 2, psycopg 3), shared by the API and the worker.

The schema itself is created by the Alembic migrations in ``fractal/migrations``
(``fractal migrate``); the models below must match them.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from fractal.states import TaskState


def utcnow() -> datetime:
    return datetime.now(UTC)


def username_key(name: str) -> str:
    """What makes two usernames the same: NFKC, then Unicode case folding ("Bob", "bob" and
    full-width "ｂｏｂ" are one name). Unique in ``users.username_key``."""
    return unicodedata.normalize("NFKC", name).casefold()


def _username_key_of_row(context: Any) -> str:
    return username_key(context.get_current_parameters()["username"])


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}  # noqa: RUF012 - SQLAlchemy's convention


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    username_key: Mapped[str] = mapped_column(Text, unique=True, default=_username_key_of_row)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Task(Base):
    __tablename__ = "tasks"
    # Listing a user's tasks newest first, paged by (created_at, id).
    __table_args__ = (Index("ix_tasks_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=TaskState.queued.value, index=True)
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    frames_total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    video_key: Mapped[str | None] = mapped_column(String(255))
    video_size: Mapped[int | None] = mapped_column(BigInteger)
    poster_key: Mapped[str | None] = mapped_column(String(255))
    # The admission estimate (fractal/admission.py): reserved against the user's quotas
    # while the task is active.
    estimated_cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    estimated_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # CPU the render measured (sum over its chunks), once the task is final.
    cpu_seconds: Mapped[float | None] = mapped_column(Float)
    # When its workflow was started (NULL: not yet, the reconcile loop starts it).
    workflow_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When its owner asked to cancel it while it was active: from then on the workflow
    # can no longer commit a result (docs/durability.md).
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TaskChunk(Base):
    """Frames done per chunk while a task renders (summed for the task's progress).

    One row per chunk, overwritten by its render activity: a retried chunk restarts its
    count instead of adding to it, so progress never exceeds the total.
    """

    __tablename__ = "task_chunks"

    task_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    chunk_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    # Thread CPU time of the attempt that rendered the chunk, once it is done.
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class CpuUsage(Base):
    """CPU-seconds of rendering charged to a user per UTC day (``fractal/usage.py``).

    A ledger of its own, so deleting a task does not give its CPU back.
    """

    __tablename__ = "cpu_usage"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)


def make_engine(database_url: str) -> Engine:
    return create_engine(database_url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def chunk_frames_done(session: Session, task_id: uuid.UUID, frames_total: int) -> int:
    """Frames the task's chunks have recorded as rendered so far (never above the total)."""
    total = session.scalar(
        select(func.coalesce(func.sum(TaskChunk.frames_done), 0)).where(
            TaskChunk.task_id == task_id
        )
    )
    return min(int(total or 0), frames_total)


def progress_frames(session: Session, task: Task) -> int:
    """Frames rendered so far: a running task sums its chunks, the others keep their count."""
    if task.state != TaskState.running:
        return task.frames_done
    return chunk_frames_done(session, task.id, task.frames_total)
