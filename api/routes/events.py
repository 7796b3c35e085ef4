"""``GET /v1/animations/{id}/events``: the task's live progress as Server-Sent Events.

Authenticated by the same bearer token as every other route, in the ``Authorization``
header: browsers read the stream with ``fetch`` (whose headers they control), not with
``EventSource`` (which cannot send one), so no token ever goes into a URL. The owner is
checked with a short session before the stream starts; the stream holds no connection.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse

from api import paths
from api.deps import ContextDep, TokenDep, authenticated_user
from api.progress_events import task_events
from api.schemas import Problem
from fractal.db import Task

router = APIRouter(prefix=paths.ANIMATIONS, tags=["animations"])


@router.get(
    "/{task_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: progress` with the task as `GET /v1/animations/{id}` "
            "shows it, whenever its state or frames done change, until a final state",
        },
        401: {"model": Problem},
        404: {"model": Problem},
    },
)
def animation_events(task_id: uuid.UUID, token: TokenDep, context: ContextDep) -> StreamingResponse:
    """Live progress of one of the caller's animations (Server-Sent Events)."""
    with context.sessions() as session:
        user = authenticated_user(session, context, token)
        task = session.get(Task, task_id)
        if task is None or task.owner_id != user.id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="animation not found")
    return StreamingResponse(
        task_events(context, task_id),
        media_type="text/event-stream",
        # No caching, and no buffering by a proxy in between (nginx honours this header).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
