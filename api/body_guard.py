"""Request bodies are bounded, timely and strict JSON before any route or authentication runs.

``BodyGuard`` is pure ASGI and sits in front of the application:

* a ``Content-Length`` over ``max_body_bytes`` is answered 413 at once, nothing read;
* otherwise the body is read here, counted as it streams in, and 413 is answered as soon
  as it passes the limit (chunked bodies, a length that lies);
* a body not whole within ``body_timeout`` seconds (a slow sender holding a connection)
  is answered 408;
* a JSON body that is not strict JSON (``api/strict_json.py``) is answered 422 naming the
  field, so no route sees a NaN, an infinity or a lone surrogate.

413 and 408 close the connection (what is left of the body is never read). The application
then gets the body replayed, in one message.
"""

from __future__ import annotations

import asyncio
import email.message

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.strict_json import json_problem
from api.validation import validation_problem


class _TooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


def is_json(content_type: str | None) -> bool:
    """What FastAPI parses as JSON: application/json and application/*+json."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class BodyGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.body_timeout)
        except _TooLarge:
            await self._too_large(scope, receive, send)
            return
        except TimeoutError:
            response = JSONResponse(
                {"detail": f"the request body did not arrive within {self.body_timeout:g} s"},
                status_code=408,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        except _ClientGone:
            return
        if body and is_json(headers.get("content-type")):
            problem = json_problem(body)
            if problem is not None:
                response = validation_problem(
                    [{"loc": problem.location, "msg": problem.message, "type": "json_invalid"}]
                )
                await response(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_body_bytes} bytes"},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body once, then whatever the server says (a disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
