"""The worker's activities one by one, on the real Postgres and a real local store, with
Temporal's activity environment: the steps the workflow repeats after a lost worker are
safe to repeat, and what retrying cannot mend fails at once."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.render import WorkerActivities
from activities.scratch import LOCK_FILE, Scratch
from fractal.db import Task, TaskChunk, User, make_engine, make_session_factory, session_scope
from fractal.engine import probe_video
from fractal.states import TaskState
from fractal.storage import LocalStore, UrlSigner, segment_key, segments_prefix, video_key
from workflows.contracts import (
    MISSING_INPUT_ERROR,
    STORAGE_REFUSED_ERROR,
    CleanupInput,
    JoinInput,
    RenderChunkInput,
    TaskStateUpdate,
)

SPEC = {"width": 64, "height": 48, "frames": 12, "max_iter": 50}


@pytest.fixture
def activities(tmp_path: Path, postgres_url: str) -> Iterator[WorkerActivities]:
    engine = make_engine(postgres_url)
    store = LocalStore(tmp_path / "objects", UrlSigner(b"s" * 32))
    scratch = Scratch(tmp_path / "scratch")
    yield WorkerActivities(store, make_session_factory(engine), scratch=scratch)
    scratch.close()
    engine.dispose()


def new_task(activities: WorkerActivities, **fields: Any) -> str:
    with session_scope(activities.sessions) as session:
        user = User(username=f"act-{uuid.uuid4().hex[:10]}", password_hash="x")
        session.add(user)
        session.flush()
        task = Task(
            owner_id=user.id,
            spec=SPEC,
            frames_total=12,
            state=fields.pop("state", "running"),
            frames_done=0,
            **fields,
        )
        session.add(task)
        session.flush()
        return str(task.id)


def row(activities: WorkerActivities, task_id: str) -> Task:
    with activities.sessions() as session:
        task = session.get(Task, uuid.UUID(task_id))
        assert task is not None
        return task


def render(activities: WorkerActivities, task_id: str, first: int, stop: int, index: int) -> Any:
    chunk = RenderChunkInput(task_id, SPEC, index, first, stop)
    return ActivityEnvironment().run(activities.render_chunk, chunk)


def test_a_join_retried_after_its_video_was_stored_needs_no_segment(
    activities: WorkerActivities,
) -> None:
    """The issue's defect 2: the worker died after storing the video and deleting a
    segment; every retry failed with FileNotFoundError and the task's failure clean-up
    deleted the finished video."""
    task_id = new_task(activities)
    keys = [render(activities, task_id, 0, 6, 0).key, render(activities, task_id, 6, 12, 1).key]
    job = JoinInput(task_id, keys, frames_total=12)
    first = ActivityEnvironment().run(activities.join_segments, job)
    assert first.frames == 12
    activities.store.delete(keys[0])  # what the old join did before it was killed
    again = ActivityEnvironment().run(activities.join_segments, job)
    assert (again.key, again.frames, again.size) == (first.key, first.frames, first.size)
    # Without video and segments there is nothing to join: a clear, final failure.
    activities.store.delete(video_key(task_id))
    with pytest.raises(ApplicationError) as failure:
        ActivityEnvironment().run(activities.join_segments, job)
    assert failure.value.type == MISSING_INPUT_ERROR and failure.value.non_retryable
    assert "missing" in str(failure.value)


def test_a_clean_up_keeps_what_the_row_records_and_fences_an_active_row(
    activities: WorkerActivities,
) -> None:
    environment = ActivityEnvironment()
    task_id = new_task(activities)
    keys = [render(activities, task_id, 0, 12, 0).key]
    joined = environment.run(activities.join_segments, JoinInput(task_id, keys, 12))
    committed = TaskStateUpdate(
        task_id, TaskState.succeeded, video_key=joined.key, video_size=joined.size, frames_done=12
    )
    assert environment.run(activities.update_task_state, committed) == TaskState.succeeded
    # A cancel's clean-up arriving after the commit: the video stays, the inputs go.
    environment.run(activities.delete_segments, CleanupInput(task_id, include_video=True))
    assert activities.store.exists(joined.key)
    assert activities.store.list_keys(segments_prefix(task_id)) == []
    # A repeated commit is answered with the row's state; a final state is never left.
    assert environment.run(activities.update_task_state, committed) == TaskState.succeeded
    failed = TaskStateUpdate(task_id, TaskState.failed, error="late")
    assert environment.run(activities.update_task_state, failed) == TaskState.succeeded

    # An active row: the clean-up fences it first, so no result can be committed after
    # its video was deleted (the first version of the workflow cleaned up that way).
    other = new_task(activities)
    keys = [render(activities, other, 0, 12, 0).key]
    joined = environment.run(activities.join_segments, JoinInput(other, keys, 12))
    environment.run(activities.delete_segments, CleanupInput(other, include_video=True))
    assert not activities.store.exists(joined.key)
    late = dataclasses.replace(committed, task_id=other, video_key=joined.key)
    assert environment.run(activities.update_task_state, late) == TaskState.canceled
    assert row(activities, other).video_key is None


def test_a_cancel_requested_first_wins_over_the_commit(activities: WorkerActivities) -> None:
    from fractal.db import utcnow

    task_id = new_task(activities, cancel_requested_at=utcnow())
    update = TaskStateUpdate(
        task_id, TaskState.succeeded, video_key=video_key(task_id), video_size=1, frames_done=12
    )
    assert ActivityEnvironment().run(activities.update_task_state, update) == TaskState.canceled
    task = row(activities, task_id)
    assert (task.state, task.video_key, task.video_size) == ("canceled", None, None)
    assert task.cpu_seconds is not None  # settled: the estimate replaced by what it measured


def test_a_store_that_refuses_writes_fails_the_chunk_at_once(
    activities: WorkerActivities,
) -> None:
    """EROFS, ENOSPC, EACCES: retrying the upload cannot help, so it is not retried."""
    task_id = new_task(activities)
    for code in (errno.EROFS, errno.ENOSPC, errno.EACCES):

        def refuse(*args: Any, code: int = code, **kwargs: Any) -> int:
            raise OSError(code, os.strerror(code))

        activities.store.put_file = refuse  # type: ignore[method-assign]
        with pytest.raises(ApplicationError) as failure:
            render(activities, task_id, 0, 6, 0)
        assert failure.value.type == STORAGE_REFUSED_ERROR and failure.value.non_retryable
        assert errno.errorcode[code] in str(failure.value)

    # A transient fault stays retryable (the plain error reaches Temporal's retry policy).
    def reset(*args: Any, **kwargs: Any) -> int:
        raise ConnectionResetError("reset")

    activities.store.put_file = reset  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        render(activities, task_id, 0, 6, 0)


def test_a_retried_chunk_resumes_after_the_parts_stored_and_progress_never_goes_back(
    activities: WorkerActivities,
) -> None:
    task_id = new_task(activities)
    activities.checkpoint_seconds = 0.0  # every frame a part of its own
    render(activities, task_id, 0, 12, 0)
    parts = activities.store.list_keys(segments_prefix(task_id))
    assert len(parts) == 12 and segment_key(task_id, 0) not in parts
    # A lost worker after 8 frames: the parts of frames 8..11 never reached the store.
    for key in parts[8:]:
        activities.store.delete(key)
    result = render(activities, task_id, 0, 12, 0)
    assert result.frames == 12
    with activities.sessions() as session:
        done = session.scalar(
            select(TaskChunk.frames_done).where(TaskChunk.task_id == uuid.UUID(task_id))
        )
    assert done == 12
    assert len(activities.store.list_keys(segments_prefix(task_id))) == 12  # 8 kept, 4 anew
    # A retry reporting fewer frames than recorded (it redoes frames an attempt lost)
    # does not move the task's progress back (the issue saw 383 -> 369).
    activities._write_progress(RenderChunkInput(task_id, SPEC, 0, 0, 12), 3)
    with activities.sessions() as session:
        assert (
            session.scalar(
                select(TaskChunk.frames_done).where(TaskChunk.task_id == uuid.UUID(task_id))
            )
            == 12
        )
    joined = ActivityEnvironment().run(
        activities.join_segments, JoinInput(task_id, [segment_key(task_id, 0)], 12)
    )
    assert joined.frames == 12
    path = Path(activities.store.path_of(joined.key))  # type: ignore[attr-defined]
    assert probe_video(path).frames == 12


def test_the_scratch_of_workers_that_are_gone_is_swept(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    mine = Scratch(root)
    dead = root / "worker-999999-deadbeef"
    dead.mkdir()
    (dead / LOCK_FILE).touch()
    (dead / "join-x").mkdir()
    (dead / "join-x" / "video.mp4").write_bytes(b"x" * 100_000)
    live = root / "worker-live"
    live.mkdir()
    (live / LOCK_FILE).touch()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; f = os.open(sys.argv[1], os.O_RDWR); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
            str(live / LOCK_FILE),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        assert Scratch(root).sweep_abandoned() == (1, 100_000)
        assert not dead.exists() and live.exists() and mine.directory.exists()
    finally:
        holder.kill()
        holder.wait()
    descriptor = os.open(live / LOCK_FILE, os.O_RDWR)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again: its holder is gone
    os.close(descriptor)
    mine.close()
