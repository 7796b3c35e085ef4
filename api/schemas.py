"""Request and response bodies of the REST API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.credentials import (
    LoginPassword,
    LoginUsername,
    NewPassword,
    NewUsername,
    check_password_differs,
)


class SignUp(BaseModel):
    """A new account, under the one credential policy (``api/credentials.py``)."""

    model_config = ConfigDict(extra="forbid")

    username: NewUsername = Field(
        description="3-64 ASCII letters, digits and _ . @ -, unique whatever the case"
    )
    password: NewPassword = Field(description="8-256 characters, not the username")

    @field_validator("password")
    @classmethod
    def _password_is_not_the_username(cls, password: str, info: ValidationInfo) -> str:
        if "username" in info.data:  # absent when the username itself was refused
            check_password_differs(info.data["username"], password)
        return password


class Login(BaseModel):
    """The OAuth2 password grant's form (RFC 6749 4.3.2), nothing else."""

    model_config = ConfigDict(extra="forbid")

    grant_type: Literal["password"] | None = None
    username: LoginUsername
    password: LoginPassword
    scope: str = Field(default="", max_length=256)
    client_id: str | None = Field(default=None, max_length=256)
    client_secret: str | None = Field(default=None, max_length=256)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class UserOut(BaseModel):
    id: uuid.UUID
    username: str
    created_at: datetime


class Progress(BaseModel):
    frames_done: int
    frames_total: int
    percent: float
    eta_seconds: float | None = Field(
        default=None,
        description="while running: the time left at the pace since the render started",
    )


class WaitingOut(BaseModel):
    reason: str = Field(
        description="`no_worker` (none is running), `render_service_unavailable` (Temporal "
        "is unreachable), `not_started` (no worker has started it yet)"
    )
    message: str = Field(description="the reason in words")
    since: datetime = Field(description="since when it has been waiting")


class TaskOut(BaseModel):
    id: uuid.UUID
    state: str
    progress: Progress
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    video_url: str | None = Field(description="presigned download URL once succeeded")
    video_size: int | None
    poster_url: str | None = Field(
        default=None, description="presigned URL of the poster image (the first frame, WebP)"
    )
    waiting: WaitingOut | None = Field(
        default=None,
        description="while queued or running: why no worker renders it, once it has waited "
        "longer than `FRACTAL_WORKER_WAIT_SECONDS` (null otherwise)",
    )
    cancel_requested: bool = Field(
        default=False,
        description="while running: a cancel was requested; it ends `canceled` within "
        "seconds (by the API after `FRACTAL_CANCEL_GRACE_SECONDS` if no worker runs it)",
    )


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page")


class Problem(BaseModel):
    detail: str
