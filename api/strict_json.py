"""JSON as RFC 8259 defines it, checked before a route sees a body.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, turns ``1e400`` into an
infinite float and ``"\\ud800"`` into a string no encoder can write; each of those used to
reach a route and end in a 500. ``json_problem`` finds the first such value and says
where it is, so the client gets a 422 naming the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

# Deeper than any body of this API; bounds the walk and Python's recursive parser.
MAX_DEPTH = 32
# Integers beyond what a 64-bit column or a JavaScript client can hold exactly.
MAX_INTEGER = 2**63 - 1


@dataclass(frozen=True)
class JsonProblem:
    location: list[str | int]  # from the body's root: ["body", "c", "re"]
    message: str


class _DuplicateKeys(dict[str, Any]):
    """An object that had a key twice (which one the parser kept is not the client's call)."""

    duplicate: str = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            marked = _DuplicateKeys(result)
            marked.duplicate = key
            return marked
        result[key] = value
    return result


def _has_lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _value_problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (NaN, Infinity and overflowing numbers are not JSON)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
        return f"integer out of range (at most {MAX_INTEGER} in magnitude)"
    if isinstance(value, str) and _has_lone_surrogate(value):
        return "contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode text"
    return None


def json_problem(body: bytes) -> JsonProblem | None:
    """The first thing that makes ``body`` not strict JSON, or None if it is."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        return JsonProblem(["body"], f"not UTF-8 (byte {error.start})")
    try:
        document = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as error:
        return JsonProblem(
            ["body"], f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        )
    except RecursionError:
        return JsonProblem(["body"], f"nested deeper than {MAX_DEPTH} levels")
    except ValueError as error:  # an integer literal beyond Python's digit limit
        return JsonProblem(["body"], f"invalid JSON: {str(error).split(';')[0]}")
    return _walk(document)


def _walk(document: Any) -> JsonProblem | None:
    stack: list[tuple[list[str | int], Any]] = [(["body"], document)]
    while stack:
        location, value = stack.pop()
        if len(location) > MAX_DEPTH + 1:
            return JsonProblem(location[: MAX_DEPTH + 1], f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            if isinstance(value, _DuplicateKeys):
                return JsonProblem([*location, value.duplicate], "key given more than once")
            for key, item in value.items():
                if _has_lone_surrogate(key):
                    return JsonProblem(location, "a key contains a lone UTF-16 surrogate")
                stack.append(([*location, key], item))
        elif isinstance(value, list):
            stack.extend(([*location, index], item) for index, item in enumerate(value))
        elif (message := _value_problem(value)) is not None:
            return JsonProblem(location, message)
    return None
