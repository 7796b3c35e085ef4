"""Sign-up and tokens (OAuth2 password form, so Swagger's Authorize button works)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import paths
from api.context import AppContext
from api.deps import ContextDep, SessionDep, client_ip
from api.schemas import Problem, SignUp, Token, UserOut
from api.security import create_access_token, hash_password, verify_password
from fractal.db import User, utcnow

router = APIRouter(tags=["auth"])

LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": Problem, "description": "too many attempts from this address"},
    503: {"model": Problem, "description": "rate limiting unavailable"},
}


def create_user(session: Session, username: str, password: str) -> User:
    user = User(username=username, password_hash=hash_password(password), created_at=utcnow())
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, detail="username is taken") from None
    return user


def authenticate(session: Session, username: str, password: str) -> User:
    # Postgres text cannot hold NUL; such a name cannot exist, so it is just a wrong login.
    clean = "\x00" not in username and len(username) <= 64
    user = session.scalar(select(User).where(User.username == username)) if clean else None
    if not verify_password(password, user.password_hash if user else None) or user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def limit_auth(context: AppContext, request: Request, response: Response) -> None:
    """Spend an authentication attempt of the client's address (429 when none is left)."""
    response.headers.update(context.spend_rate_limit(context.auth_attempts, client_ip(request)))


@router.post(
    paths.SIGNUP,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": Problem}, **LIMITED},
)
def signup(
    body: SignUp, session: SessionDep, context: ContextDep, request: Request, response: Response
) -> UserOut:
    limit_auth(context, request, response)
    user = create_user(session, body.username, body.password)
    return UserOut(id=user.id, username=user.username, created_at=user.created_at)


@router.post(paths.TOKEN, responses={401: {"model": Problem}, **LIMITED})
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    context: ContextDep,
    request: Request,
    response: Response,
) -> Token:
    limit_auth(context, request, response)
    user = authenticate(session, form.username, form.password)
    access_token, lifetime = create_access_token(user.username, user.id, context.settings)
    return Token(access_token=access_token, token_type="bearer", expires_in=lifetime)
