"""Task statuses as ``GET /v1/animations/{id}`` answers them, kept for a fraction of a second.

Clients poll a task's status (the CLI's ``watch`` of old, scripts, dashboards, several tabs):
fifty of them on one task made the API read the same three rows fifty times in the same few
milliseconds, on the cores the render needs. Within ``status_cache_seconds`` (0.25 s by
default; 0 turns it off) an answer is served again without touching the database, once the
caller's token has been checked (signature and expiry, on every request).

An entry belongs to the account that read it (the key is the token's account id, so nobody
is served another's task), and is dropped at once when this process changes the task
(cancel, delete) or deletes the account; changes made elsewhere (the workflow's progress,
another API process) show within the TTL. Progress pushed as it happens is the event
stream's job (``/events``).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable

Key = tuple[uuid.UUID, uuid.UUID]  # (account, task)


class StatusCache:
    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        # The answer's JSON, ready to send: serialising it again would cost as much as the rest.
        self._entries: OrderedDict[Key, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()  # cancels and deletions forget from the thread pool
        self._loading: dict[Key, asyncio.Future[bytes]] = {}

    def get(self, user_id: uuid.UUID, task_id: uuid.UUID) -> bytes | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            entry = self._entries.get((user_id, task_id))
            if entry is None:
                return None
            expires, status = entry
            if time.monotonic() >= expires:
                del self._entries[(user_id, task_id)]
                return None
            return status

    def put(self, user_id: uuid.UUID, task_id: uuid.UUID, status: bytes) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries[(user_id, task_id)] = (time.monotonic() + self.ttl, status)
            self._entries.move_to_end((user_id, task_id))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    async def load(
        self, user_id: uuid.UUID, task_id: uuid.UUID, read: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The kept answer, or ``read()``'s, kept. Readers that miss together wait for one
        read (fifty clients whose entry expired at once make one database read, not fifty);
        a read that fails fails them all alike (401, 404)."""
        kept = self.get(user_id, task_id)
        if kept is not None:
            return kept
        key = (user_id, task_id)
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            status = await read()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            del self._loading[key]
        self.put(user_id, task_id, status)
        future.set_result(status)
        return status

    def forget_task(self, task_id: uuid.UUID) -> None:
        with self._lock:
            for key in [key for key in self._entries if key[1] == task_id]:
                del self._entries[key]

    def forget_user(self, user_id: uuid.UUID) -> None:
        with self._lock:
            for key in [key for key in self._entries if key[0] == user_id]:
                del self._entries[key]
