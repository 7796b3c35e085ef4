"""The signed-in user's account."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api import paths
from api.animation_service import delete_account
from api.deps import ContextDep, CurrentUser, SessionDep
from api.schemas import UserOut

router = APIRouter(prefix=paths.USERS, tags=["users"])


@router.get("/me")
def read_me(user: CurrentUser) -> UserOut:
    return UserOut(id=user.id, username=user.username, created_at=user.created_at)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
def delete_me(user: CurrentUser, session: SessionDep, context: ContextDep) -> Response:
    """Cancel the user's running renders and delete their animations, videos and account."""
    delete_account(context, session, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
