"""422 answers that name the field and say why, and never give the input back.

FastAPI's own handler returns every error with its ``input`` (a 10 MB password came back
whole) and its ``ctx``, and its JSON encoder then fails on a NaN or a lone surrogate in
them (a 500). Here only the location, a bounded message and the error type are kept, and
the location's keys (which come from the client) are cut short too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger("fractal.api")

MAX_MESSAGE_CHARS = 200
MAX_KEY_CHARS = 64


def _short(text: str, limit: int) -> str:
    # A lone surrogate cannot be encoded into the answer: show its code point instead.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_location(location: Sequence[Any]) -> list[str | int]:
    """The error's location with client-made parts (object keys) cut to a short length."""
    return [
        part if isinstance(part, int) and not isinstance(part, bool) else _short(str(part), 64)
        for part in location
    ]


def safe_message(message: str) -> str:
    return _short(str(message).removeprefix("Value error, "), MAX_MESSAGE_CHARS)


def problem_detail(location: Sequence[Any], message: str, kind: str) -> dict[str, Any]:
    return {"loc": safe_location(location), "msg": safe_message(message), "type": kind}


def validation_problem(errors: Iterable[Mapping[str, Any]]) -> JSONResponse:
    """422 with one ``{loc, msg, type}`` per error, nothing of the input."""
    detail = [
        problem_detail(
            error.get("loc", ()), str(error.get("msg", "invalid")), error.get("type", "")
        )
        for error in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def request_validation_failed(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = list(error.errors())
    log.debug("%s %s: %d validation errors", request.method, request.url.path, len(errors))
    return validation_problem(errors)
