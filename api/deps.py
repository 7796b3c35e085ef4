"""FastAPI dependencies: the app context, a database session and the current user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from api import paths
from api.context import AppContext
from api.security import InvalidToken, TokenIdentity, decode_access_token
from fractal.db import User
from fractal.observability import bind

oauth2_scheme = OAuth2PasswordBearer(tokenUrl=paths.TOKEN)


async def get_context(request: Request) -> AppContext:
    # async: a trivial lookup should not cost a thread-pool hop on every request.
    return request.app.state.context  # type: ignore[no-any-return]


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_session(context: ContextDep) -> Iterator[Session]:
    with context.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
TokenDep = Annotated[str, Depends(oauth2_scheme)]

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="invalid or expired token",
    headers={"WWW-Authenticate": "Bearer"},
)


def token_identity(token: str, context: AppContext) -> TokenIdentity:
    """Whom a bearer token names (signature and expiry checked); 401 if it is invalid."""
    try:
        return decode_access_token(token, context.settings)
    except InvalidToken:
        raise UNAUTHORIZED from None


def authenticated_user(session: Session, context: AppContext, token: str) -> User:
    """The account a bearer token speaks for; 401 if it is invalid or the account is gone."""
    identity = token_identity(token, context)
    user = session.get(User, identity.user_id)
    if user is None or user.username != identity.username:  # deleted since it was issued
        raise UNAUTHORIZED
    bind(user_id=user.id)
    return user


def get_current_user(session: SessionDep, context: ContextDep, token: TokenDep) -> User:
    return authenticated_user(session, context, token)


CurrentUser = Annotated[User, Depends(get_current_user)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
