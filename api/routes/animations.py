"""Render tasks: submit, list, read, download, cancel or delete."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import select, tuple_

from api import paths
from api.animation_service import (
    Removal,
    cancel_or_delete,
    describe,
    owned_task,
    poster_url,
    request_cancel,
    submit,
    video_url,
)
from api.deps import (
    ContextDep,
    CurrentUser,
    SessionDep,
    TokenDep,
    authenticated_user,
    token_identity,
)
from api.response_headers import response_headers
from api.schemas import Problem, TaskOut, TaskPage
from fractal.db import Task
from fractal.observability import bind
from fractal.spec import AnimationSpec
from fractal.states import TaskState

router = APIRouter(prefix=paths.ANIMATIONS, tags=["animations"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        422: {"description": "invalid spec, or its estimated cost passes a limit"},
        429: {"model": Problem, "description": "submission rate, active-task cap or a quota"},
        503: {"model": Problem, "description": "Redis or Temporal unavailable"},
    },
)
def create_animation(
    spec: Annotated[AnimationSpec, Body()],
    user: CurrentUser,
    session: SessionDep,
    context: ContextDep,
    request: Request,
    response: Response,
) -> TaskOut:
    """Queue a render. Every spec field is optional; ``{}`` renders the original animation.

    Refused with 422 when its estimated cost passes a limit (CPU, a worker's memory,
    storage), with 429 when the user's daily CPU or storage quota is used up."""
    task = submit(context, session, user, spec, response_headers(request))
    response.headers["Location"] = f"{paths.ANIMATIONS}/{task.id}"
    return describe(context, session, task)


def _encode_cursor(task: Task) -> str:
    raw = f"{task.created_at.isoformat()}|{task.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(task_id)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="invalid cursor") from None


@router.get("", responses={400: {"model": Problem}})
def list_animations(
    user: CurrentUser,
    session: SessionDep,
    context: ContextDep,
    state: TaskState | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TaskPage:
    """The caller's animations, newest first."""
    query = select(Task).where(Task.owner_id == user.id)
    if state is not None:
        query = query.where(Task.state == state.value)
    if cursor:
        created, task_id = _decode_cursor(cursor)
        query = query.where(tuple_(Task.created_at, Task.id) < tuple_(created, task_id))
    rows = list(
        session.scalars(query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1))
    )
    page = rows[:limit]
    return TaskPage(
        items=[describe(context, session, task) for task in page],
        next_cursor=_encode_cursor(page[-1]) if len(rows) > limit else None,
    )


@router.get("/{task_id}", response_model=TaskOut, responses=NOT_FOUND)
async def read_animation(task_id: uuid.UUID, token: TokenDep, context: ContextDep) -> Response:
    """The animation's state and progress. Polled by many clients at once, so the answer is
    kept for ``FRACTAL_STATUS_CACHE_SECONDS`` (api/status_cache.py): within it, the token
    is checked and nothing else is read. For progress as it happens, use ``/events``."""
    identity = token_identity(token, context)
    bind(user_id=identity.user_id, task_id=task_id)

    def read() -> bytes:
        with context.sessions() as session:
            user = authenticated_user(session, context, token)
            task = describe(context, session, owned_task(session, user, task_id))
            return task.model_dump_json().encode()

    body = await context.statuses.load(identity.user_id, task_id, lambda: run_in_threadpool(read))
    return Response(body, media_type="application/json")


@router.get(
    "/{task_id}/video",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={**NOT_FOUND, 409: {"model": Problem, "description": "not rendered yet"}},
)
def download_animation(
    task_id: uuid.UUID, user: CurrentUser, session: SessionDep, context: ContextDep
) -> RedirectResponse:
    task = owned_task(session, user, task_id)
    url = video_url(context, task)
    if url is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"animation is {task.state}")
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@router.get(
    "/{task_id}/poster",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={**NOT_FOUND, 409: {"model": Problem, "description": "not rendered yet"}},
)
def animation_poster(
    task_id: uuid.UUID, user: CurrentUser, session: SessionDep, context: ContextDep
) -> RedirectResponse:
    """302 to the poster image (the first frame, WebP) of a finished animation."""
    task = owned_task(session, user, task_id)
    if task.state != TaskState.succeeded:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"animation is {task.state}")
    url = poster_url(context, task)
    if url is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="this animation has no poster")
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@router.post(
    "/{task_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **NOT_FOUND,
        409: {"model": Problem, "description": "already finished: nothing was changed"},
    },
)
def cancel_animation(
    task_id: uuid.UUID, user: CurrentUser, session: SessionDep, context: ContextDep
) -> TaskOut:
    """Cancel a queued or running animation (202: a queued one is `canceled` at once, a
    running one has `cancel_requested` and ends `canceled` within seconds). A finished one
    is left as it is (409 with its state): a cancel never deletes a video."""
    task = owned_task(session, user, task_id)
    if request_cancel(context, session, task) is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"animation already {task.state}")
    return describe(context, session, task)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **NOT_FOUND,
        202: {"model": TaskOut, "description": "was active: canceled, or its cancel requested"},
    },
)
def delete_animation(
    task_id: uuid.UUID, user: CurrentUser, session: SessionDep, context: ContextDep
) -> Response:
    """Cancel a queued or running animation (202, as `POST .../cancel`), or delete a
    finished one with its video and poster (204). Decided on the task's state at that
    moment, under its lock: a render that finished just before is deleted (204), never
    left succeeded without its video."""
    task = owned_task(session, user, task_id)
    if cancel_or_delete(context, session, task) is Removal.DELETED:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return JSONResponse(
        describe(context, session, task).model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
    )
