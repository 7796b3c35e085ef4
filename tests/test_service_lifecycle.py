"""Cancellation, account deletion and a worker killed mid-render, on the real stack."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import pytest
from sqlalchemy import func, select

from activities.scratch import default_scratch_root
from fractal.cli.client import poll
from fractal.db import Task, TaskChunk, make_engine
from fractal.storage import part_frames
from fractal.temporal import connect, workflow_id_for
from tests.stack import Stack, sign_up_and_log_in, wait_for_state

SCRATCH = default_scratch_root()
# Slow enough on two cores (a few seconds per chunk) to be caught while running.
LONG = {"width": 320, "height": 240, "frames": 240, "fps": 24, "max_iter": 3000}


def workflow_status(stack: Stack, task_id: str) -> str:
    async def describe() -> str:
        client = await connect(stack.settings.temporal_address, "default")
        handle = client.get_workflow_handle(workflow_id_for(task_id))
        description = await handle.describe()
        assert description.status is not None
        return description.status.name

    return asyncio.run(describe())


def workflow_outcome(stack: Stack, task_id: str) -> str:
    async def result() -> str:
        client = await connect(stack.settings.temporal_address, "default")
        try:
            return repr(await client.get_workflow_handle(workflow_id_for(task_id)).result())
        except Exception as error:
            causes = []
            cause: BaseException | None = error
            while cause is not None:
                causes.append(repr(cause))
                cause = cause.__cause__
            return " <- ".join(causes)

    return asyncio.run(result())


def wait_for_workflow(stack: Stack, task_id: str, status: str, timeout: float = 60) -> None:
    def reached(current: str) -> bool:
        if current not in (status, "RUNNING"):
            raise AssertionError(f"workflow {current}: {workflow_outcome(stack, task_id)}")
        return current == status

    poll(lambda: workflow_status(stack, task_id), reached, timeout=timeout, interval=0.2)


def wait_for_progress(client, headers: dict, task_id: str, timeout: float = 120) -> dict:
    """The task once it is running and has frames done."""

    def rendering(task: dict) -> bool:
        assert task["state"] in ("queued", "running"), task
        return task["state"] == "running" and task["progress"]["frames_done"] > 0

    return poll(
        lambda: client.get(f"/v1/animations/{task_id}", headers=headers).json(),
        rendering,
        timeout=timeout,
        interval=0.1,
    )


def count_rows(stack: Stack, model, **where) -> int:
    engine = make_engine(stack.settings.database_url or "")
    with engine.connect() as connection:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        count = connection.scalar(query)
    engine.dispose()
    return int(count or 0)


def test_cancel_a_running_task(local_stack: Stack) -> None:
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, "canceller")
        task = client.post("/v1/animations", json=LONG, headers=headers).json()
        running = wait_for_progress(client, headers, task["id"])
        assert 0 < running["progress"]["frames_done"] < 240
        assert running["started_at"] is not None

        started = time.monotonic()
        response = client.delete(f"/v1/animations/{task['id']}", headers=headers)
        assert response.status_code == 202
        canceled = wait_for_state(client, headers, task["id"], {"canceled", "failed", "succeeded"})
        assert canceled["state"] == "canceled", (canceled["error"], canceled)
        assert time.monotonic() - started < 5  # "stop within a few seconds"
        assert canceled["video_url"] is None and canceled["finished_at"] is not None
        wait_for_workflow(local_stack, task["id"], "CANCELED")
        assert local_stack.store().list_keys(f"segments/{task['id']}/") == []
        assert local_stack.store().list_keys(f"videos/{task['id']}") == []

        # A finished task is deleted for good.
        assert client.delete(f"/v1/animations/{task['id']}", headers=headers).status_code == 204
        assert client.get(f"/v1/animations/{task['id']}", headers=headers).status_code == 404


def test_delete_a_user_with_a_running_task(local_stack: Stack) -> None:
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, "leaver")
        task = client.post("/v1/animations", json=LONG, headers=headers).json()
        wait_for_progress(client, headers, task["id"])
        assert client.delete("/v1/users/me", headers=headers).status_code == 204
        assert client.get("/v1/users/me", headers=headers).status_code == 401
    wait_for_workflow(local_stack, task["id"], "CANCELED")
    assert count_rows(local_stack, Task, id=uuid.UUID(task["id"])) == 0
    assert count_rows(local_stack, TaskChunk, task_id=uuid.UUID(task["id"])) == 0
    assert local_stack.store().list_keys(f"segments/{task['id']}/") == []
    assert local_stack.store().list_keys(f"videos/{task['id']}") == []


@pytest.mark.slow
def test_worker_killed_mid_render_loses_nothing(local_stack: Stack) -> None:
    """SIGKILL every worker once a chunk has stored a part, start a new one: the task
    succeeds with one video, its progress never went back (the issue saw 383 -> 369), the
    new worker resumed the chunk after its stored part and swept the dead one's scratch."""
    # Chunks of a second or two on two cores: stored in parts (checkpoints every 0.5 s).
    spec = {"width": 640, "height": 480, "supersample": 3, "frames": 96, "max_iter": 1000}
    store = local_stack.store()
    seen: list[int] = []
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, "survivor")
        task = client.post("/v1/animations", json=spec, headers=headers).json()
        parts = poll(
            lambda: [key for key in store.list_keys(f"segments/{task['id']}/") if part_frames(key)],
            bool,
            timeout=120,
            interval=0.05,
        )
        victims = [worker for worker in local_stack.workers if worker.poll() is None]
        scratch = [path for worker in victims for path in SCRATCH.glob(f"worker-{worker.pid}-*")]
        for worker in victims:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        assert scratch and all(path.exists() for path in scratch)  # what the dead left
        survivor = local_stack.start_worker()
        done = wait_for_state(
            client,
            headers,
            task["id"],
            {"succeeded", "failed", "canceled"},
            timeout=180,
            on_update=lambda current: seen.append(current["progress"]["frames_done"]),
        )
        assert done["state"] == "succeeded", done
        assert done["progress"]["frames_done"] == 96
    assert seen == sorted(seen), seen  # progress never went back
    assert not any(path.exists() for path in scratch)  # swept by the new worker at its start
    log = (local_stack.settings.data_dir / f"worker-{len(local_stack.workers) - 1}.log").read_text()
    assert survivor.poll() is None and "resumes at frame" in log, parts
    # The segments go once the result is committed (the workflow's last step).
    poll(lambda: store.list_keys(f"segments/{task['id']}/"), lambda keys: not keys, timeout=20)
    # One video and its poster.
    assert store.list_keys(f"videos/{task['id']}") == [
        f"videos/{task['id']}.mp4",
        f"videos/{task['id']}.webp",
    ]
    wait_for_workflow(local_stack, task["id"], "COMPLETED")
