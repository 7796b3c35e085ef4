"""The workflow on the real stack: lost starts reconciled, a failed start, a storage fault."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from fractal.cli.client import poll
from fractal.db import Task, User, make_engine, make_session_factory, session_scope, utcnow
from fractal.embedded import embedded_temporal, free_port
from fractal.settings import Settings
from fractal.temporal import connect, workflow_id_for
from tests.stack import Stack, make_settings, serve_api, sign_up_and_log_in
from workflows.contracts import RenderRequest
from workflows.render import RenderAnimationWorkflow

SMALL = {"width": 64, "height": 48, "frames": 12, "max_iter": 50}


def _insert_task(stack: Stack, spec: dict, **fields) -> str:
    engine = make_engine(stack.settings.database_url or "")
    with session_scope(make_session_factory(engine)) as session:
        user = User(username=f"wf-{uuid.uuid4().hex[:10]}", password_hash="x")
        session.add(user)
        session.flush()
        task = Task(
            owner_id=user.id, spec=spec, frames_total=12, state="queued", frames_done=0, **fields
        )
        session.add(task)
        session.flush()
        task_id = str(task.id)
    engine.dispose()
    return task_id


def _wait_for_row(stack: Stack, task_id: str, state: str) -> Task:
    def reached(row: Task) -> bool:
        assert row.state in ("queued", "running", state), row.state
        return row.state == state

    return poll(lambda: _task_row(stack, task_id), reached, timeout=60, interval=0.2)


def _task_row(stack: Stack | Settings, task_id: str) -> Task:
    settings = stack.settings if isinstance(stack, Stack) else stack
    engine = make_engine(settings.database_url or "")
    with make_session_factory(engine)() as session:
        task = session.get(Task, uuid.UUID(task_id))
        assert task is not None
    engine.dispose()
    return task


def test_lost_workflow_start_is_reconciled_on_restart(local_stack: Stack, tmp_path: Path) -> None:
    # A row the API committed but whose workflow start was lost (the API died in between).
    task_id = _insert_task(local_stack, SMALL, created_at=utcnow() - timedelta(minutes=1))
    settings = local_stack.settings.model_copy(update={"api_port": free_port()})
    with serve_api(settings):
        row = _wait_for_row(local_stack, task_id, "succeeded")

    # Starting it again (a double submit, another reconcile) is a no-op, not a second render.
    async def start_again() -> int:
        from api.context import AppContext
        from api.render_service import render_request, start_workflow

        context = AppContext.from_settings(settings)
        await start_workflow(context, render_request(context, row))
        client = await context.temporal()
        runs = [run async for run in client.list_workflows(f"WorkflowId = 'render-{task_id}'")]
        context.close()
        return len(runs)

    assert asyncio.run(start_again()) == 1


def test_lost_workflow_start_is_reconciled_while_the_api_runs(local_stack: Stack) -> None:
    settings = local_stack.settings.model_copy(
        update={"api_port": free_port(), "reconcile_interval_seconds": 1.0}
    )
    # Too young for the start-up sweep (rows older than 5 s), old enough for the periodic
    # one (older than the 1 s interval): only the periodic sweep can start it.
    task_id = _insert_task(local_stack, SMALL, created_at=utcnow() - timedelta(seconds=3))
    with serve_api(settings):
        _wait_for_row(local_stack, task_id, "succeeded")


@pytest.mark.slow
def test_submit_with_temporal_down_answers_at_once_and_queues_durably(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """The issue's fault: with Temporal down a submission blocked 9.8 s and left a failed
    row. Now it is queued at once (202), says why it waits, starts when Temporal is back,
    and a cancel of it needs no worker."""
    temporal_port = free_port()
    settings = make_settings(
        tmp_path,
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=f"127.0.0.1:{temporal_port}",
        temporal_connect_timeout_seconds=1.0,
        watchdog_interval_seconds=0.5,
        reconcile_interval_seconds=0.5,
        worker_wait_seconds=1.0,
    )
    with serve_api(settings) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        headers = sign_up_and_log_in(client, "no-temporal")
        started = time.monotonic()
        response = client.post("/v1/animations", json=SMALL, headers=headers)
        assert response.status_code == 202, response.text
        assert time.monotonic() - started < 3  # was 9.8 s
        task = response.json()
        assert task["state"] == "queued"

        def waits_for_temporal(current: dict) -> bool:
            assert current["state"] == "queued", current
            return (current["waiting"] or {}).get("reason") == "render_service_unavailable"

        current = poll(
            lambda: client.get(f"/v1/animations/{task['id']}", headers=headers).json(),
            waits_for_temporal,
            timeout=30,
            interval=0.2,
        )
        assert "unreachable" in current["waiting"]["message"]
        assert _task_row(settings, task["id"]).workflow_started_at is None
        metrics = client.get("/metrics").text
        assert 'fractal_api_submissions_total{outcome="start_deferred"} 1.0' in metrics

        # Temporal comes back: the reconcile loop starts the workflow (no worker polls
        # this queue, so the task goes on waiting, now for a worker).
        with embedded_temporal(tmp_path / "temporal", port=temporal_port, headless=True):
            row = poll(
                lambda: _task_row(settings, task["id"]),
                lambda row: row.workflow_started_at is not None,
                timeout=60,
                interval=0.2,
            )
            assert row.state == "queued"
            assert workflow_status(settings, task["id"]) == "RUNNING"

            # Nobody runs it: a cancel completes at once, without a worker.
            started = time.monotonic()
            response = client.delete(f"/v1/animations/{task['id']}", headers=headers)
            assert response.status_code == 202
            assert response.json()["state"] == "canceled"
            assert time.monotonic() - started < 3
            assert workflow_status(settings, task["id"]) == "TERMINATED"
        again = client.post("/v1/animations", json=SMALL, headers=headers)
        assert again.status_code == 202  # its reservation and active slot were given back


def test_api_refuses_to_start_with_the_default_secret(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FRACTAL_JWT_SECRET": "change-me"}
    result = subprocess.run(
        [sys.executable, "-m", "fractal.cli", "api"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "FRACTAL_JWT_SECRET" in result.stderr


def test_transient_storage_fault_is_retried(local_stack: Stack) -> None:
    from fractal.storage import local_store_dir

    # The task's row and a file where its segment directory must go, before the workflow
    # starts: every upload fails until the file is gone.
    task_id = _insert_task(local_stack, SMALL)
    blocker = local_store_dir(local_stack.settings) / "segments" / task_id
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way")

    async def run() -> int:
        temporal = await connect(local_stack.settings.temporal_address, "default")
        handle = await temporal.start_workflow(
            RenderAnimationWorkflow.run,
            RenderRequest(
                task_id,
                SMALL,
                chunk_stops=[6, 12],
                max_parallel_chunks=2,
                heartbeat_timeout_seconds=4.0,
            ),
            id=workflow_id_for(task_id),
            task_queue=local_stack.settings.temporal_task_queue,
        )

        async def failed_attempts() -> int:
            description = await handle.describe()
            return max(
                (activity.attempt for activity in description.raw_description.pending_activities),
                default=1,
            )

        # Unblock once an upload has failed and its chunk is being tried again.
        while (attempt := await failed_attempts()) < 2:
            await asyncio.sleep(0.05)
        blocker.unlink()
        await handle.result()
        return attempt

    assert asyncio.run(asyncio.wait_for(run(), 60)) >= 2
    assert _task_row(local_stack, task_id).state == "succeeded"


def workflow_status(settings: Settings, task_id: str) -> str:
    async def describe() -> str:
        client = await connect(settings.temporal_address, "default")
        description = await client.get_workflow_handle(workflow_id_for(task_id)).describe()
        assert description.status is not None
        return description.status.name

    return asyncio.run(describe())
