"""The original service's routes, kept so its clients keep working.

Their shapes (201 on reads, ``token_type: "Bearer"``, READY/RUNNING/DONE/FAILED) are the
original's, not the v1 API's.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.animation_service import delete_account, owned_task, submit, video_url
from api.credentials import LoginPassword, LoginUsername
from api.deps import ContextDep, CurrentUser, SessionDep
from api.response_headers import response_headers
from api.routes.auth import authenticate, create_user, limit_auth, limit_signup
from api.schemas import SignUp
from api.security import create_access_token
from fractal.db import Task
from fractal.spec import MAX_C_MODULUS, AnimationSpec, format_validation_error
from fractal.states import TaskState

router = APIRouter(tags=["compatibility"])

COMPAT_STATES = {
    TaskState.queued: "READY",
    TaskState.running: "RUNNING",
    TaskState.succeeded: "DONE",
    TaskState.failed: "FAILED",
    TaskState.canceled: "FAILED",
}


class Credentials(BaseModel):
    """A sign-in: names an existing account (made under any earlier policy)."""

    model_config = ConfigDict(extra="forbid")

    username: LoginUsername
    password: LoginPassword


class CompatUser(BaseModel):
    id: uuid.UUID
    username: str
    password: str = ""


class CompatToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"


Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_C_MODULUS, le=MAX_C_MODULUS)]


class CompatTaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    z_re: Coordinate
    z_im: Coordinate


class CompatTask(BaseModel):
    id: uuid.UUID
    z_re: float
    z_im: float
    state: str
    url: str


def _compat_task(task: Task, url: str = "") -> CompatTask:
    c = task.spec.get("c") or {}
    return CompatTask(
        id=task.id,
        z_re=float(c.get("re", 0.0)),
        z_im=float(c.get("im", 0.0)),
        state=COMPAT_STATES[TaskState(task.state)],
        url=url,
    )


@router.post("/sign-up", status_code=status.HTTP_201_CREATED)
def sign_up(body: SignUp, session: SessionDep, context: ContextDep, request: Request) -> CompatUser:
    """The v1 sign-up's policy and limits, the original's answer."""
    limit_signup(context, request)
    user = create_user(context, session, body.username, body.password)
    return CompatUser(id=user.id, username=user.username)


@router.post("/sign-in", status_code=status.HTTP_201_CREATED)
def sign_in(
    body: Credentials, session: SessionDep, context: ContextDep, request: Request
) -> CompatToken:
    limit_auth(context, request)
    user = authenticate(context, session, body.username, body.password)
    token, _ = create_access_token(user.username, user.id, context.settings)
    return CompatToken(access_token=token)


@router.post("/add", status_code=status.HTTP_201_CREATED)
def add(
    body: CompatTaskIn,
    user: CurrentUser,
    session: SessionDep,
    context: ContextDep,
    request: Request,
) -> CompatTask:
    """Render the original default animation starting from c = z_re + i z_im."""
    try:
        spec = AnimationSpec.model_validate(
            {**context.settings.compat_spec, "c": {"re": body.z_re, "im": body.z_im}}
        )
    except ValidationError as error:  # e.g. |c| > 4 from two in-range coordinates
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=format_validation_error(error)
        ) from None
    task = submit(context, session, user, spec, response_headers(request))
    return _compat_task(task)


@router.get("/task/{task_id}", status_code=status.HTTP_201_CREATED)
def read_task(
    task_id: uuid.UUID, user: CurrentUser, session: SessionDep, context: ContextDep
) -> CompatTask:
    task = owned_task(session, user, task_id)
    return _compat_task(task, video_url(context, task) or "")


@router.delete("/delete-user", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user: CurrentUser, session: SessionDep, context: ContextDep) -> Response:
    delete_account(context, session, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
