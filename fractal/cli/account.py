"""Your account on a server: sign up, log in, log out, who am I.

Passwords are never taken from the command line by default (it ends up in the shell
history and in ``ps``): they are prompted for without echo, or read from standard input
(``--password-stdin``) or ``FRACTAL_PASSWORD`` for scripts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Annotated

import httpx
import typer

from fractal.cli.app import app, fail
from fractal.cli.client import (
    DEFAULT_API,
    ApiClient,
    ApiError,
    forget_credentials,
    load_credentials,
    save_credentials,
    saved_api,
)

PASSWORD_VARIABLE = "FRACTAL_PASSWORD"
API_VARIABLE = "FRACTAL_API"

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        help=f"API base URL (default: ${API_VARIABLE}, the last one logged in to, or "
        f"{DEFAULT_API})",
    ),
]
UsernameOption = Annotated[str, typer.Option(prompt=True, help="your username")]
PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help=f"read the password from standard input (or set ${PASSWORD_VARIABLE}); "
        "otherwise it is prompted for without echo",
    ),
]
# Kept for old scripts; hidden, and it warns: a password given here ends up in the history.
PasswordOption = Annotated[str | None, typer.Option("--password", hidden=True)]


def api_url(given: str | None) -> str:
    return given or os.environ.get(API_VARIABLE) or saved_api() or DEFAULT_API


@contextlib.contextmanager
def talking_to(api: str, action: str) -> Iterator[None]:
    """Turn what can go wrong with a request into one clear line and exit 1."""
    try:
        yield
    except ApiError as error:
        raise fail(f"{action}: {error.explain()}") from None
    except httpx.TransportError as error:
        raise fail(f"{action}: cannot reach the API at {api} ({error})") from None
    except LookupError as error:  # not logged in, or the token expired
        raise fail(str(error)) from None


def read_password(from_stdin: bool, legacy: str | None, confirm: bool) -> str:
    if legacy is not None:
        typer.echo(
            f"warning: --password leaves the password in your shell history; use "
            f"--password-stdin or ${PASSWORD_VARIABLE}",
            err=True,
        )
        return legacy
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise fail("--password-stdin: nothing on standard input", 2)
        return password
    if os.environ.get(PASSWORD_VARIABLE):
        return os.environ[PASSWORD_VARIABLE]
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


def logged_in() -> tuple[ApiClient, str]:
    """A client with the saved token, and its API; exits when not logged in."""
    try:
        credentials = load_credentials()
    except LookupError as error:
        raise fail(str(error)) from None
    return ApiClient(credentials["api"], credentials["access_token"]), credentials["api"]


def _log_in(api: str, username: str, password: str) -> None:
    with talking_to(api, "login failed"):
        token, expires_in = ApiClient(api).log_in(username, password)
    path = save_credentials(api, token, expires_in)
    typer.echo(f"logged in to {api} as {username}; token saved to {path}")


@app.command()
def login(
    username: UsernameOption,
    password_stdin: PasswordStdinOption = False,
    password: PasswordOption = None,
    api: ApiOption = None,
) -> None:
    """Log in and keep the token in your config directory (mode 0600)."""
    secret = read_password(password_stdin, password, confirm=False)
    _log_in(api_url(api), username, secret)


@app.command()
def signup(
    username: Annotated[str, typer.Option(prompt=True, help="3-64 letters, digits and _ . @ -")],
    password_stdin: PasswordStdinOption = False,
    password: PasswordOption = None,
    api: ApiOption = None,
) -> None:
    """Create an account (the password is asked twice) and log in to it."""
    url = api_url(api)
    secret = read_password(password_stdin, password, confirm=True)
    with talking_to(url, "sign-up failed"):
        ApiClient(url).sign_up(username, secret)
    typer.echo(f"account {username} created")
    _log_in(url, username, secret)


@app.command()
def logout() -> None:
    """Forget the saved token."""
    if forget_credentials():
        typer.echo("logged out")
    else:
        typer.echo("not logged in")


@app.command()
def whoami() -> None:
    """Who the saved token speaks for, on which server, and for how long."""
    client, api = logged_in()
    with talking_to(api, "cannot tell"):
        user = client.me()
        minutes = max(0, int((load_credentials()["expires_at"] - time.time()) // 60))
    typer.echo(f"{user['username']} at {api} (token valid for {minutes} more min)")
