"""One credential policy for every route that creates or checks a username or password.

New usernames are NFKC-normalised and must then be 3 to 64 ASCII letters, digits or
``_ . @ -``. ASCII only is what makes names unmistakable: a Cyrillic ``о`` in ``bоb``, a
zero-width space, a right-to-left override or a trailing space would otherwise give two
accounts that read the same. Each refusal names the offending character. Names are unique
without regard to case (``fractal.db.username_key``, a unique column).

Passwords are NFKC-normalised (NIST SP 800-63B), 8 to 256 characters, without control
characters, not only spaces and not the username.

Logins look names up by their key without judging them, so an account made before this
policy (by the compatibility route) can still sign in; nothing new like it can be made.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field

from fractal.db import username_key

USERNAME_MIN, USERNAME_MAX = 3, 64
PASSWORD_MIN, PASSWORD_MAX = 8, 256
USERNAME_CHARACTERS = "ASCII letters, digits and _ . @ -"
_USERNAME = re.compile(r"[A-Za-z0-9_.@-]+")


def _describe(character: str) -> str:
    name = unicodedata.name(character, "unnamed")
    return f"U+{ord(character):04X} {name}"


def _why_not_allowed(character: str) -> str:
    category = unicodedata.category(character)
    if category == "Cc":
        return f"contains a control character ({_describe(character)})"
    if category == "Cf":
        return (
            f"contains an invisible formatting character ({_describe(character)}), "
            "such as a zero-width space or a text-direction override"
        )
    if category == "Cs":
        return "contains a lone UTF-16 surrogate"
    if character.isspace():
        return f"contains a space ({_describe(character)})"
    return (
        f"contains {character!r} ({_describe(character)}); usernames are {USERNAME_CHARACTERS}, "
        "so that no two of them look alike"
    )


def normalized_username(raw: str) -> str:
    """The NFKC form of a new username; ValueError saying what is wrong with it."""
    if raw != raw.strip():
        raise ValueError("must not begin or end with a space")
    name = unicodedata.normalize("NFKC", raw)
    for character in name:
        if not _USERNAME.fullmatch(character):
            raise ValueError(_why_not_allowed(character))
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        raise ValueError(f"must be {USERNAME_MIN} to {USERNAME_MAX} characters long")
    return name


def normalized_password(raw: str) -> str:
    """The NFKC form of a new password; ValueError saying what is wrong with it."""
    password = unicodedata.normalize("NFKC", raw)
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError(f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long")
    for character in password:
        if unicodedata.category(character) in ("Cc", "Cs"):
            raise ValueError(_why_not_allowed(character))
    if not password.strip():
        raise ValueError("must not be only spaces")
    return password


def check_password_differs(username: str, password: str) -> None:
    if username_key(password) == username_key(username):
        raise ValueError("must not be the username")


def login_password_candidates(raw: str) -> list[str]:
    """What a login password is checked as: its NFKC form, and the raw form if that differs
    (a password set before passwords were normalised)."""
    normalized = unicodedata.normalize("NFKC", raw)
    return [normalized] if normalized == raw else [normalized, raw]


# Field types for request models. The raw bounds come first, so normalising never works on
# more than a few hundred characters.
NewUsername = Annotated[
    str, Field(max_length=4 * USERNAME_MAX), AfterValidator(normalized_username)
]
NewPassword = Annotated[
    str, Field(max_length=4 * PASSWORD_MAX), AfterValidator(normalized_password)
]
# A login names an existing account: anything up to the size a stored name can have.
LoginUsername = Annotated[str, Field(min_length=1, max_length=4 * USERNAME_MAX)]
LoginPassword = Annotated[str, Field(min_length=1, max_length=4 * PASSWORD_MAX)]
