"""Request and response bodies of the REST API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]+$"


class SignUp(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=256)


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


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page")


class Problem(BaseModel):
    detail: str
