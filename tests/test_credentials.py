"""One credential policy (api/credentials.py) for the v1 and the compatibility routes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.credentials import normalized_password, normalized_username
from fractal.db import username_key
from tests.stack import make_settings, serve_api

# What the compatibility /sign-up used to accept (and v1 then logged in).
REFUSED_USERNAMES = {
    " ": "space",
    "alice ": "begin or end with a space",
    " alice": "begin or end with a space",
    "b\u043eb": "U+043E CYRILLIC SMALL LETTER O",  # bоb with a Cyrillic o
    "\u202eevil": "formatting character",  # right-to-left override
    "ev\u200bil": "formatting character",  # zero-width space
    "al\u200dice": "formatting character",  # zero-width joiner
    "ali\x07ce": "control character",
    "a\tb": "control character",
    "al ice": "contains a space",
    "ab": "3 to 64",
    "x" * 65: "3 to 64",
    "\u0430\u0435\u043e": "CYRILLIC",  # аео, all Cyrillic look-alikes of Latin letters
    "\u0391\u0392\u0395": "GREEK",  # ΑΒΕ
    "user\U0001f600": "GRINNING FACE",
}
REFUSED_PASSWORDS = {
    "a": "8 to 256",
    "short": "8 to 256",
    " " * 12: "only spaces",
    "pass\x00word-1": "control character",
    "x" * 257: "8 to 256",
}


@pytest.mark.parametrize(("username", "why"), REFUSED_USERNAMES.items())
def test_the_policy_refuses_usernames_and_says_why(username: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        normalized_username(username)


def test_usernames_are_nfkc_and_keys_ignore_case() -> None:
    assert normalized_username("\uff42\uff4f\uff42") == "bob"  # full-width ｂｏｂ
    assert normalized_username("Ada.Lovelace@example-1_x") == "Ada.Lovelace@example-1_x"
    assert username_key("Alice") == username_key("ALICE") == "alice"
    assert username_key("\uff21lice") == "alice"  # full-width Ａ


@pytest.mark.parametrize(("password", "why"), REFUSED_PASSWORDS.items())
def test_the_policy_refuses_passwords(password: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        normalized_password(password)


def test_passwords_are_nfkc() -> None:
    assert normalized_password("pa\uff53\uff53word") == "password"
    assert normalized_password("correct horse battery") == "correct horse battery"


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str,
    temporal_address: str,
) -> Iterator[str]:
    settings = make_settings(
        tmp_path_factory.mktemp("credentials"),
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
    )
    with serve_api(settings) as base_url:
        yield base_url


SIGN_UPS = ["/v1/auth/signup", "/sign-up"]


@pytest.mark.parametrize("route", SIGN_UPS)
def test_both_sign_ups_refuse_what_the_policy_refuses(api: str, route: str) -> None:
    with httpx.Client(base_url=api) as client:
        for username, why in REFUSED_USERNAMES.items():
            response = client.post(route, json={"username": username, "password": "pass-word-1"})
            assert response.status_code == 422, (route, username, response.text)
            detail = response.json()["detail"][0]
            assert detail["loc"] == ["body", "username"] and why in detail["msg"], detail
        for password, why in {**REFUSED_PASSWORDS, "same-as-name": "the username"}.items():
            response = client.post(route, json={"username": "same-as-name", "password": password})
            assert response.status_code == 422, (route, password, response.text)
            detail = response.json()["detail"][0]
            assert detail["loc"] == ["body", "password"] and why in detail["msg"], detail


@pytest.mark.parametrize("route", SIGN_UPS)
def test_names_are_unique_whatever_the_case_or_width(api: str, route: str) -> None:
    name = f"Case{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=api) as client:
        first = client.post(route, json={"username": name, "password": "pass-word-1"})
        assert first.status_code == 201
        for other in (name.lower(), name.upper(), name.translate(_FULL_WIDTH)):
            for any_route in SIGN_UPS:
                again = client.post(any_route, json={"username": other, "password": "pass-word-2"})
                assert again.status_code == 409, (any_route, other, again.text)
        # One account: any spelling logs into it.
        for spelling in (name, name.lower(), name.translate(_FULL_WIDTH)):
            login = client.post(
                "/v1/auth/token", data={"username": spelling, "password": "pass-word-1"}
            )
            assert login.status_code == 200, (spelling, login.text)
            token = login.json()["access_token"]
            me = client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
            assert me.json()["username"] == name
            assert (
                client.post(
                    "/sign-in", json={"username": spelling, "password": "pass-word-1"}
                ).status_code
                == 201
            )


_FULL_WIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}


def test_passwords_log_in_by_their_nfkc_form(api: str) -> None:
    with httpx.Client(base_url=api) as client:
        name = f"nfkc-{uuid.uuid4().hex[:6]}"
        created = client.post(
            "/v1/auth/signup", json={"username": name, "password": "pa\uff53\uff53word-1"}
        )
        assert created.status_code == 201
        for typed in ("password-1", "pa\uff53\uff53word-1"):
            login = client.post("/v1/auth/token", data={"username": name, "password": typed})
            assert login.status_code == 200, typed


def test_compatibility_routes_can_be_switched_off(
    tmp_path: Path, postgres_url: str, redis_url: str, temporal_address: str
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        compat_routes=False,
    )
    with serve_api(settings) as base_url, httpx.Client(base_url=base_url) as client:
        credentials = {"username": "compat-off", "password": "pass-word-1"}
        for method, path in (
            ("POST", "/sign-up"),
            ("POST", "/sign-in"),
            ("POST", "/add"),
            ("GET", f"/task/{uuid.uuid4()}"),
            ("DELETE", "/delete-user"),
        ):
            assert client.request(method, path, json=credentials).status_code in (404, 405), path
        assert client.post("/v1/auth/signup", json=credentials).status_code == 201
        assert "/sign-up" not in client.get("/openapi.json").json()["paths"]
