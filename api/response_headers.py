"""Headers every answer carries, whatever route or error produced it.

* ``X-Content-Type-Options: nosniff``: a browser never guesses a type other than the one
  given (a JSON error is never run as a script, a video never as HTML).
* ``Cache-Control: no-store`` unless the route chose a policy: answers carry tokens,
  presigned URLs and per-user state that no shared cache may keep.
* Headers a route stashed with ``add_response_headers`` before it could know how the
  request would end: the ``RateLimit-*`` of a login reach its 401 as well as its 200.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_STASH = "fractal.response_headers"
ALWAYS = {"X-Content-Type-Options": "nosniff"}
DEFAULT_CACHE_CONTROL = "no-store"


def add_response_headers(request: Request, headers: Mapping[str, str]) -> None:
    """Headers for the answer to ``request``, whatever it turns out to be."""
    stash = cast(dict[str, str], request.scope.setdefault(_STASH, {}))
    stash.update(headers)


def response_headers(request: Request) -> dict[str, str]:
    """The stash itself, for code that spends limits before it knows the outcome."""
    return cast(dict[str, str], request.scope.setdefault(_STASH, {}))


class ResponseHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {**ALWAYS, **scope.get(_STASH, {})}.items():
                    if name not in headers:
                        headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = DEFAULT_CACHE_CONTROL
            await send(message)

        await self.app(scope, receive, send_with_headers)
