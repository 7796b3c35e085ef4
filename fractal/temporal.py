"""Connecting to Temporal (shared by the API, the worker and the CLI)."""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client


def workflow_id_for(task_id: str) -> str:
    """One workflow per task: a second start with the same id is refused by Temporal."""
    return f"render-{task_id}"


async def connect(address: str, namespace: str, *, timeout: float = 30.0) -> Client:
    """Connect, retrying while the server starts (a fresh dev server takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = await Client.connect(address, namespace=namespace)
            await client.service_client.check_health()
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
