"""Who is asking, for routes that also answer without an account (previews, the map,
estimates): the signed-in user when a valid token comes with the request, else the client
address. The rate limits of those routes are counted per requester."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from api import paths
from api.deps import UNAUTHORIZED, ContextDep, client_ip
from api.security import InvalidToken, decode_access_token

# Same scheme as the signed-in routes, but a missing token is not an error here.
optional_token = OAuth2PasswordBearer(tokenUrl=paths.TOKEN, auto_error=False)


def requester(
    request: Request, context: ContextDep, token: Annotated[str | None, Depends(optional_token)]
) -> str:
    """``user:<id>`` for a valid token, ``address:<ip>`` without one; a bad token is 401
    (a client that sends one expects to be known). No database read: the token suffices."""
    if token is None:
        return f"address:{client_ip(request)}"
    try:
        identity = decode_access_token(token, context.settings)
    except InvalidToken:
        raise UNAUTHORIZED from None
    return f"user:{identity.user_id}"


RequesterDep = Annotated[str, Depends(requester)]
