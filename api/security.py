"""Passwords (argon2 through passlib) and access tokens (HS256 JWTs through python-jose)."""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from jose import JWTError, jwt
from passlib.context import CryptContext

from fractal.settings import DEFAULT_JWT_SECRET, Settings

# passlib's bcrypt backend breaks on bcrypt 5; argon2 is the better hash anyway.
password_context = CryptContext(schemes=["argon2"], deprecated="auto")
# Verified when the username is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = password_context.hash("not-a-real-password")
MIN_SECRET_LENGTH = 32


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class TokenIdentity:
    """Who a valid token speaks for: ``sub`` is the username (as the original service's
    tokens), ``uid`` pins the account, so a token outlives neither a deleted account nor a
    new account that later takes the same username."""

    username: str
    user_id: uuid.UUID


def hash_password(password: str) -> str:
    return password_context.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches; an unknown account (``None``) costs the same time and
    gives the same answer as a wrong password, whatever the password (passlib refuses
    passwords over 4096 bytes: that used to escape as a 500 for unknown users only)."""
    try:
        return password_context.verify(password, password_hash or _DUMMY_HASH) and bool(
            password_hash
        )
    except (ValueError, TypeError):
        # Refused before hashing: spend the time a real verification takes.
        password_context.verify("not-the-password", _DUMMY_HASH)
        return False


class HashingBusy(Exception):
    """Every password-hashing slot stayed taken for the whole wait."""


class PasswordGate:
    """At most ``concurrency`` argon2 computations at once in this process.

    Each takes 64 MiB and about 0.2 s of CPU: forty logins at once (the thread pool's size)
    would need 2.5 GiB, more than the API's memory limit. Beyond ``concurrency`` callers
    wait up to ``wait_seconds``; when ``max_waiting`` already wait, they are refused at once.
    """

    def __init__(self, concurrency: int, wait_seconds: float = 10.0) -> None:
        self._slots = threading.BoundedSemaphore(concurrency)
        self._waiting = 0
        self._lock = threading.Lock()
        self.max_waiting = 8 * concurrency
        self.wait_seconds = wait_seconds

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise HashingBusy
            self._waiting += 1
        try:
            acquired = self._slots.acquire(timeout=self.wait_seconds)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            raise HashingBusy
        try:
            yield
        finally:
            self._slots.release()


def check_jwt_secret(settings: Settings) -> None:
    """Refuse to serve with a missing, default or short signing secret."""
    secret = settings.jwt_secret.get_secret_value()
    if not secret or secret == DEFAULT_JWT_SECRET or len(secret) < MIN_SECRET_LENGTH:
        raise RuntimeError(
            "FRACTAL_JWT_SECRET must be set to a random string of at least "
            f"{MIN_SECRET_LENGTH} characters (for example: openssl rand -hex 32)"
        )


def create_access_token(username: str, user_id: uuid.UUID, settings: Settings) -> tuple[str, int]:
    """A signed token for the account and its lifetime in seconds."""
    lifetime = settings.access_token_minutes * 60
    now = int(time.time())
    claims = {
        "sub": username,
        "uid": str(user_id),
        "iat": now,
        "exp": now + lifetime,
        "typ": "access",
    }
    token = jwt.encode(
        claims, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithm
    )
    return token, lifetime


def decode_access_token(token: str, settings: Settings) -> TokenIdentity:
    """The identity in a valid token; expired, tampered or unsigned tokens raise InvalidToken."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            # Pinned: a token may not choose its own algorithm ("none", RS/HS confusion).
            algorithms=[settings.jwt_algorithm],
            options={"require_exp": True, "require_sub": True, "require_iat": True},
        )
        if claims.get("typ") != "access":
            raise InvalidToken("not an access token")
        _check_numeric_dates(claims)
        return TokenIdentity(username=str(claims["sub"]), user_id=uuid.UUID(str(claims["uid"])))
    except (JWTError, ValueError, KeyError) as error:
        raise InvalidToken(str(error)) from None


def _check_numeric_dates(claims: dict[str, object]) -> None:
    """``exp`` and ``iat`` must be JSON numbers (RFC 7519 NumericDate). python-jose checks
    them with ``int(value)``, which also takes the string ``"9999999999"``."""
    for claim in ("exp", "iat"):
        value = claims.get(claim)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidToken(f"{claim} is not a number")
        if not math.isfinite(value):
            raise InvalidToken(f"{claim} is not a finite number")
