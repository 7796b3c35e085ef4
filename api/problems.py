"""422 answers in the shape FastAPI gives to invalid requests, for checks made in code.

``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``: a client (the studio, the CLI)
shows each message next to the field ``loc`` names, whichever check refused it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError


def invalid(loc: Sequence[str | int], message: str, value: Any = None) -> RequestValidationError:
    """One refused field; raise the result."""
    return RequestValidationError(
        [{"type": "value_error", "loc": tuple(loc), "msg": message, "input": value}]
    )


def invalid_model(loc: Sequence[str | int], error: ValidationError) -> RequestValidationError:
    """A model's validation errors, each located under ``loc`` (e.g. ``("query", "spec")``)."""
    return RequestValidationError(
        [
            {**item, "loc": (*loc, *item["loc"])}
            for item in error.errors(include_url=False, include_context=False)
        ]
    )
