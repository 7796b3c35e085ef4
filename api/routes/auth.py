"""Sign-up and tokens (OAuth2 password form, so Swagger's Authorize button works).

``create_user`` and ``authenticate`` are the only ways an account is made or a password
checked, for these routes and the compatibility ones alike: the credential policy
(``api/credentials.py``), the per-address limits, the per-account backoff and the bound
on concurrent password hashing all live behind them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Form, HTTPException, Request, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import paths
from api.context import AppContext
from api.credentials import login_password_candidates
from api.deps import ContextDep, SessionDep, client_ip
from api.errors import RateLimited, service_unavailable
from api.response_headers import add_response_headers
from api.schemas import Login, Problem, SignUp, Token, UserOut
from api.security import HashingBusy, create_access_token, hash_password, verify_password
from fractal.db import User, username_key, utcnow

router = APIRouter(tags=["auth"])

LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": Problem, "description": "too many attempts from this address or account"},
    503: {"model": Problem, "description": "rate limiting unavailable or too busy"},
}
WRONG_LOGIN = "wrong username or password"


@contextlib.contextmanager
def password_slot(context: AppContext) -> Iterator[None]:
    try:
        with context.password_gate.slot():
            yield
    except HashingBusy:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="too many logins at once; retry in a moment",
            headers={"Retry-After": "1"},
        ) from None


def create_user(context: AppContext, session: Session, username: str, password: str) -> User:
    """A new account; ``username`` and ``password`` have passed the credential policy."""
    with password_slot(context):
        password_hash = hash_password(password)
    user = User(username=username, password_hash=password_hash, created_at=utcnow())
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, detail="username is taken") from None
    return user


def _spend_login_attempt(context: AppContext, account: str) -> None:
    try:
        wait = context.login_backoff.attempt(account)
    except redis.RedisError:
        raise service_unavailable("rate limiting (Redis)") from None
    if wait:
        context.metrics.rate_limit_rejections.labels("login").inc()
        raise RateLimited(
            f"too many failed logins for this account; retry in {wait} s",
            {"Retry-After": str(wait)},
        )


def authenticate(context: AppContext, session: Session, username: str, password: str) -> User:
    """The account whose password this is; 401 for a wrong name or password alike."""
    account = username_key(username)
    _spend_login_attempt(context, account)
    # Postgres text cannot hold NUL: such a name cannot exist, so it is just a wrong login.
    user = session.scalar(select(User).where(User.username_key == account))
    if "\x00" in account:
        user = None
    stored = user.password_hash if user else None
    with password_slot(context):
        matched = any(
            verify_password(candidate, stored) for candidate in login_password_candidates(password)
        )
    if not matched or user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=WRONG_LOGIN,
            headers={"WWW-Authenticate": "Bearer"},
        )
    with contextlib.suppress(redis.RedisError):  # the backoff then simply runs out
        context.login_backoff.succeeded(account)
    return user


def limit_auth(context: AppContext, request: Request) -> None:
    """Spend an authentication attempt of the client's address (429 when none is left); its
    ``RateLimit-*`` headers go on the answer, whatever it is (401 included)."""
    add_response_headers(
        request, context.spend_rate_limit(context.auth_attempts, client_ip(request))
    )


def limit_signup(context: AppContext, request: Request) -> None:
    """Spend an authentication attempt and a sign-up of the client's address."""
    limit_auth(context, request)
    context.spend_rate_limit(context.signups, client_ip(request))


@router.post(
    paths.SIGNUP,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": Problem}, **LIMITED},
)
def signup(body: SignUp, session: SessionDep, context: ContextDep, request: Request) -> UserOut:
    limit_signup(context, request)
    user = create_user(context, session, body.username, body.password)
    return UserOut(id=user.id, username=user.username, created_at=user.created_at)


@router.post(paths.TOKEN, responses={401: {"model": Problem}, **LIMITED})
def token(
    form: Annotated[Login, Form()],
    session: SessionDep,
    context: ContextDep,
    request: Request,
) -> Token:
    limit_auth(context, request)
    user = authenticate(context, session, form.username, form.password)
    access_token, lifetime = create_access_token(user.username, user.id, context.settings)
    return Token(access_token=access_token, token_type="bearer", expires_in=lifetime)
