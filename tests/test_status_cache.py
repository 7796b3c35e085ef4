"""The status of a task kept for a fraction of a second (api/status_cache.py): served again
only to the account that read it, dropped when this process changes the task or deletes
the account."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from api.schemas import Progress, TaskOut
from api.status_cache import StatusCache
from fractal.states import TaskState
from tests.stack import Stack, sign_up_and_log_in, wait_for_state

LONG = {"width": 320, "height": 240, "frames": 240, "fps": 24, "max_iter": 3000}
SMALL = {"width": 64, "height": 48, "frames": 12, "max_iter": 50}


def status(task_id: uuid.UUID) -> bytes:
    return (
        TaskOut(
            id=task_id,
            state=TaskState.running,
            progress=Progress(frames_done=1, frames_total=2, percent=50.0),
            spec={},
            created_at=datetime.now(UTC),
            started_at=None,
            finished_at=None,
            error=None,
            video_url=None,
            video_size=None,
            poster_url=None,
            waiting=None,
            cancel_requested=False,
        )
        .model_dump_json()
        .encode()
    )


def test_entries_expire_belong_to_their_account_and_are_forgotten() -> None:
    cache = StatusCache(0.2, max_entries=3)
    owner, other, task = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    answer = status(task)
    cache.put(owner, task, answer)
    assert cache.get(owner, task) == answer
    assert cache.get(other, task) is None  # another account never gets it
    time.sleep(0.25)
    assert cache.get(owner, task) is None  # expired

    cache.put(owner, task, answer)
    cache.forget_task(task)
    assert cache.get(owner, task) is None
    cache.put(owner, task, answer)
    cache.forget_user(owner)
    assert cache.get(owner, task) is None

    tasks = [uuid.uuid4() for _ in range(4)]
    for one in tasks:
        cache.put(owner, one, status(one))
    assert cache.get(owner, tasks[0]) is None  # the oldest made room
    assert all(cache.get(owner, one) is not None for one in tasks[1:])
    off = StatusCache(0)
    off.put(owner, task, answer)
    assert off.get(owner, task) is None


def test_readers_that_miss_together_wait_for_one_read() -> None:
    cache = StatusCache(10)
    owner, task = uuid.uuid4(), uuid.uuid4()
    reads = 0

    async def read() -> bytes:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.05)
        return b"{}"

    async def fifty() -> list[bytes]:
        return await asyncio.gather(*(cache.load(owner, task, read) for _ in range(50)))

    assert asyncio.run(fifty()) == [b"{}"] * 50
    assert reads == 1

    async def refused() -> bytes:
        raise LookupError("no such task")

    async def two_refused() -> list[BaseException | bytes]:
        other = uuid.uuid4()
        return list(
            await asyncio.gather(
                cache.load(owner, other, refused),
                cache.load(owner, other, refused),
                return_exceptions=True,
            )
        )

    assert [type(error) for error in asyncio.run(two_refused())] == [LookupError, LookupError]


def test_a_cancel_or_an_account_deletion_is_seen_at_once(local_stack: Stack) -> None:
    assert local_stack.settings.status_cache_seconds > 0
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, f"cached-{uuid.uuid4().hex[:8]}")
        stranger = sign_up_and_log_in(client, f"stranger-{uuid.uuid4().hex[:8]}")
        task = client.post("/v1/animations", json=LONG, headers=headers).json()
        url = f"/v1/animations/{task['id']}"
        first = client.get(url, headers=headers)
        assert first.status_code == 200
        # Kept for the owner only: another account still gets 404.
        assert client.get(url, headers=stranger).status_code == 404
        # A cancel through this process: the next read says so, not the kept answer.
        assert client.post(f"{url}/cancel", headers=headers).status_code == 202
        after = client.get(url, headers=headers).json()
        assert after["state"] == "canceled" or after["cancel_requested"] is True
        wait_for_state(client, headers, task["id"], {"canceled"}, timeout=60)

        small = client.post("/v1/animations", json=SMALL, headers=headers).json()
        assert client.get(f"/v1/animations/{small['id']}", headers=headers).status_code == 200
        assert client.delete("/v1/users/me", headers=headers).status_code == 204
        # The token died with its account, kept answers too.
        gone = client.get(f"/v1/animations/{small['id']}", headers=headers)
        assert gone.status_code == 401
