"""Refusals every route answers the same way."""

from __future__ import annotations

from fastapi import HTTPException, status


class RateLimited(HTTPException):
    """429 with the limit's headers (``Retry-After``, ``RateLimit-*``)."""

    def __init__(self, detail: str, headers: dict[str, str]) -> None:
        super().__init__(status.HTTP_429_TOO_MANY_REQUESTS, detail=detail, headers=headers)


def service_unavailable(what: str) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"{what} is unavailable")
