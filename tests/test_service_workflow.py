"""Workflow behaviour that the API does not reach: invalid specs, lost starts, reconcile."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

from fractal.db import Task, User, make_engine, make_session_factory, session_scope, utcnow
from fractal.embedded import free_port
from fractal.temporal import connect, workflow_id_for
from tests.stack import Stack, make_settings, serve_api, sign_up_and_log_in
from workflows.contracts import RENDER_WORKFLOW, RenderRequest

SMALL = {"width": 64, "height": 48, "frames": 12, "max_iter": 50}


def _insert_task(stack: Stack, spec: dict, **fields) -> str:
    engine = make_engine(stack.settings.database_url or "")
    with session_scope(make_session_factory(engine)) as session:
        user = User(username=f"wf-{uuid.uuid4().hex[:10]}", password_hash="x")
        session.add(user)
        session.flush()
        task = Task(owner_id=user.id, spec=spec, frames_total=12, state="queued",
                    frames_done=0, **fields)  # fmt: skip
        session.add(task)
        session.flush()
        task_id = str(task.id)
    engine.dispose()
    return task_id


def _task_row(stack: Stack, task_id: str) -> Task:
    engine = make_engine(stack.settings.database_url or "")
    with make_session_factory(engine)() as session:
        task = session.get(Task, uuid.UUID(task_id))
        assert task is not None
    engine.dispose()
    return task


def test_invalid_spec_fails_at_once_without_retries(local_stack: Stack) -> None:
    bad_spec = {"width": 17, "height": 48, "frames": 12}  # odd width: invalid
    task_id = _insert_task(local_stack, bad_spec)

    async def run() -> tuple[str, int]:
        client = await connect(local_stack.settings.temporal_address, "default")
        handle = await client.start_workflow(
            RENDER_WORKFLOW,
            RenderRequest(task_id, bad_spec, frames_total=12, frames_per_chunk=6),
            id=workflow_id_for(task_id),
            task_queue=local_stack.settings.temporal_task_queue,
        )
        try:
            await handle.result()
        except Exception as error:
            message = str(error.__cause__ or error)
        attempts = [
            event.activity_task_started_event_attributes.attempt
            async for event in handle.fetch_history_events()
            if event.HasField("activity_task_started_event_attributes")
        ]
        return message, max(attempts)

    started = time.monotonic()
    message, max_attempt = asyncio.run(run())
    assert time.monotonic() - started < 15
    assert "invalid animation spec" in message and "width" in message
    assert max_attempt == 1
    row = _task_row(local_stack, task_id)
    assert row.state == "failed" and "width" in (row.error or "")


def test_lost_workflow_start_is_reconciled_on_restart(local_stack: Stack, tmp_path: Path) -> None:
    # A row the API committed but whose workflow start was lost (the API died in between).
    task_id = _insert_task(local_stack, SMALL, created_at=utcnow() - timedelta(minutes=1))
    settings = local_stack.settings.model_copy(update={"api_port": free_port()})
    with serve_api(settings):
        deadline = time.monotonic() + 60
        while (row := _task_row(local_stack, task_id)).state != "succeeded":
            assert row.state in ("queued", "running") and time.monotonic() < deadline, row.state
            time.sleep(0.2)

    # Starting it again (a double submit, another reconcile) is a no-op, not a second render.
    async def start_again() -> int:
        from api.context import AppContext
        from api.tasks import render_request, start_workflow

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
    with serve_api(settings):
        time.sleep(1.5)  # past the start-up sweep: only the periodic one can find it
        task_id = _insert_task(local_stack, SMALL, created_at=utcnow() - timedelta(minutes=1))
        deadline = time.monotonic() + 60
        while (row := _task_row(local_stack, task_id)).state != "succeeded":
            assert row.state in ("queued", "running") and time.monotonic() < deadline, row.state
            time.sleep(0.2)


def test_failed_workflow_start_marks_the_row_failed(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    dead_temporal = f"127.0.0.1:{free_port()}"
    settings = make_settings(
        tmp_path, database_url=postgres_url, redis_url=redis_url, temporal_address=dead_temporal,
        temporal_connect_timeout_seconds=1.0,
    )  # fmt: skip
    with serve_api(settings) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        headers = sign_up_and_log_in(client, "no-temporal")
        response = client.post("/v1/animations", json=SMALL, headers=headers)
        assert response.status_code == 503
        [task] = client.get("/v1/animations", headers=headers).json()["items"]
        assert task["state"] == "failed" and "could not start" in task["error"]


def test_api_refuses_to_start_with_the_default_secret(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FRACTAL_JWT_SECRET": "change-me"}
    result = subprocess.run(
        [sys.executable, "-m", "fractal.cli", "api"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "FRACTAL_JWT_SECRET" in result.stderr


def test_transient_storage_fault_is_retried(local_stack: Stack) -> None:
    from fractal.storage import local_store_dir

    with httpx.Client(base_url=local_stack.base_url, timeout=30) as client:
        headers = sign_up_and_log_in(client, "unlucky")
        # Slow enough frames that the blocker below is in place before the first upload.
        spec = {"width": 160, "height": 120, "frames": 12, "max_iter": 3000}
        task = client.post("/v1/animations", json=spec, headers=headers).json()
        # A file where the task's segment directory must go: uploads fail until it is gone.
        blocker = local_store_dir(local_stack.settings) / "segments" / task["id"]
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("in the way")
        time.sleep(1.5)
        blocker.unlink()
        deadline = time.monotonic() + 60
        while task["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
            task = client.get(f"/v1/animations/{task['id']}", headers=headers).json()
        assert task["state"] == "succeeded", task

    async def render_attempts() -> int:
        temporal = await connect(local_stack.settings.temporal_address, "default")
        handle = temporal.get_workflow_handle(workflow_id_for(task["id"]))
        return max(
            [
                event.activity_task_started_event_attributes.attempt
                async for event in handle.fetch_history_events()
                if event.HasField("activity_task_started_event_attributes")
            ]
        )

    assert asyncio.run(render_attempts()) > 1
