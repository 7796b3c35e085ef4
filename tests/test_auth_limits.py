"""Who a client is (trusted proxies only), and the limits on guessing and signing up."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jose import jwt

from tests.stack import TEST_SECRET, make_settings, serve_api, sign_up_and_log_in


@pytest.fixture
def make_api(
    tmp_path: Path, postgres_url: str, redis_url: str, temporal_address: str
) -> Iterator[Any]:
    """Serve an API with the given settings (each in its own Redis namespace)."""
    with_stack: list[Any] = []

    def start(**overrides: Any) -> str:
        import contextlib

        directory = tmp_path / f"api-{len(with_stack)}"
        directory.mkdir()
        settings = make_settings(
            directory,
            database_url=postgres_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            redis_key_prefix=f"auth-{uuid.uuid4().hex[:8]}",
            **overrides,
        )
        stack = contextlib.ExitStack()
        base_url = stack.enter_context(serve_api(settings))
        with_stack.append(stack)
        return base_url

    yield start
    for stack in with_stack:
        stack.close()


def spoofed(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(make_api: Any) -> None:
    """30 logins from 30 claimed addresses are one client: the limit holds."""
    base_url = make_api(auth_attempts_per_minute=4)
    with httpx.Client(base_url=base_url) as client:
        codes = [
            client.post(
                "/v1/auth/token",
                data={"username": "nobody", "password": "x"},
                headers=spoofed(f"203.0.113.{n}"),
            ).status_code
            for n in range(30)
        ]
    assert codes[:4] == [401] * 4
    assert set(codes[4:]) == {429}


def test_sign_ups_from_claimed_addresses_are_throttled(make_api: Any) -> None:
    base_url = make_api(signups_per_hour=3)
    with httpx.Client(base_url=base_url) as client:
        codes = []
        for n in range(15):
            response = client.post(
                "/v1/auth/signup",
                json={"username": f"spoof-{uuid.uuid4().hex[:8]}", "password": "pass-word-1"},
                headers=spoofed(f"198.51.100.{n}"),
            )
            codes.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 60  # 3 an hour
        compat = client.post(
            "/sign-up",
            json={"username": f"spoof-{uuid.uuid4().hex[:8]}", "password": "pass-word-1"},
        )
    assert codes[:3] == [201] * 3 and set(codes[3:]) == {429}
    assert compat.status_code == 429


def test_a_trusted_proxy_gives_each_client_its_own_limit(make_api: Any) -> None:
    """Behind a trusted proxy (here the test client's own address) the client is the
    rightmost address the proxy did not add; clients no longer share one bucket."""
    base_url = make_api(auth_attempts_per_minute=2, trusted_proxies=["127.0.0.1/32"])
    with httpx.Client(base_url=base_url) as client:

        def attempt(forwarded: str) -> int:
            return client.post(
                "/v1/auth/token",
                data={"username": "nobody", "password": "x"},
                headers=spoofed(forwarded),
            ).status_code

        assert [attempt("192.0.2.1"), attempt("192.0.2.1"), attempt("192.0.2.1")] == [
            401,
            401,
            429,
        ]
        assert attempt("192.0.2.2") == 401  # another client
        # A forged entry to the left of what the proxy appended changes nothing.
        assert attempt("10.9.9.9, 192.0.2.1") == 429


@pytest.mark.parametrize("trusted", [False, True], ids=["no proxy trusted", "proxy trusted"])
def test_anonymous_previews_are_limited_per_client_address(make_api: Any, trusted: bool) -> None:
    """The studio's anonymous previews (and estimates) are counted per client address, the
    same address the login limits use: resolved through trusted proxies only."""
    base_url = make_api(
        previews_per_minute=1,
        preview_burst=2,
        trusted_proxies=["127.0.0.1/32"] if trusted else [],
    )
    frames = iter(range(100))  # a new image each time: cached ones spend nothing

    def preview(forwarded: str) -> int:
        return client.post(
            "/v1/preview",
            json={"spec": {"width": 64, "height": 48}, "frame": next(frames), "width": 32},
            headers=spoofed(forwarded),
        ).status_code

    with httpx.Client(base_url=base_url, timeout=60) as client:
        assert [preview("192.0.2.1") for _ in range(3)] == [200, 200, 429]
        # Another client behind the trusted proxy has its own bucket; without a trusted
        # proxy the header is ignored and it is the same client.
        assert preview("192.0.2.2") == (200 if trusted else 429)
        estimate = client.post("/v1/animations/estimate", json={}, headers=spoofed("192.0.2.1"))
        assert estimate.status_code == 429  # estimates share the previews' bucket


def test_failed_logins_back_off_per_account_whatever_the_address(make_api: Any) -> None:
    base_url = make_api(login_failures_before_backoff=3, trusted_proxies=["127.0.0.1"])
    with httpx.Client(base_url=base_url) as client:
        sign_up_and_log_in(client, "victim-1")

        def login(password: str, address: str) -> httpx.Response:
            return client.post(
                "/v1/auth/token",
                data={"username": "VICTIM-1", "password": password},
                headers=spoofed(address),
            )

        # Three free failures, the fourth is let through and starts the backoff.
        codes = [login("wrong-guess", f"192.0.2.{n}").status_code for n in range(4)]
        assert codes == [401, 401, 401, 401]
        refused = login("pass-word-1", "192.0.2.99")  # even the right password must wait
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 2
        deadline = time.monotonic() + 30
        while (answer := login("pass-word-1", "192.0.2.99")).status_code == 429:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert answer.status_code == 200
        # Success forgets the failures.
        assert [login("wrong-guess", "192.0.2.7").status_code for _ in range(3)] == [401] * 3


def test_unknown_accounts_back_off_the_same_way(make_api: Any) -> None:
    base_url = make_api(login_failures_before_backoff=2)
    with httpx.Client(base_url=base_url) as client:
        codes = [
            client.post(
                "/v1/auth/token", data={"username": "ghost", "password": "wrong-guess"}
            ).status_code
            for _ in range(5)
        ]
        assert codes[:3] == [401, 401, 401] and 429 in codes[3:]
        assert (
            client.post("/sign-in", json={"username": "ghost", "password": "x"}).status_code == 429
        )


def test_an_oversized_password_answers_the_same_for_known_and_unknown_users(
    make_api: Any,
) -> None:
    base_url = make_api()
    with httpx.Client(base_url=base_url) as client:
        sign_up_and_log_in(client, "known-user")
        for length in (4097, 5000, 60_000):
            password = "p" * length
            known = client.post(
                "/v1/auth/token", data={"username": "known-user", "password": password}
            )
            unknown = client.post(
                "/v1/auth/token", data={"username": "no-such-user", "password": password}
            )
            assert known.status_code == unknown.status_code < 500, (
                length,
                known.text,
                unknown.text,
            )
            assert known.json() == unknown.json()
            compat_known = client.post(
                "/sign-in", json={"username": "known-user", "password": password}
            )
            compat_unknown = client.post(
                "/sign-in", json={"username": "no-such-user", "password": password}
            )
            assert compat_known.status_code == compat_unknown.status_code < 500


def test_verify_password_never_raises() -> None:
    from api.security import hash_password, verify_password

    stored = hash_password("pass-word-1")
    for candidate in ("p" * 4097, "p" * 100_000, ""):
        assert verify_password(candidate, stored) is False
        assert verify_password(candidate, None) is False
    assert verify_password("pass-word-1", stored) is True


def test_token_answers_are_never_cached_and_carry_the_limit_headers(make_api: Any) -> None:
    base_url = make_api(auth_attempts_per_minute=50)
    with httpx.Client(base_url=base_url) as client:
        sign_up_and_log_in(client, "header-user")
        good = client.post(
            "/v1/auth/token", data={"username": "header-user", "password": "pass-word-1"}
        )
        bad = client.post(
            "/v1/auth/token", data={"username": "header-user", "password": "wrong-one"}
        )
        taken = client.post(
            "/v1/auth/signup", json={"username": "header-user", "password": "pass-word-1"}
        )
        compat = client.post(
            "/sign-in", json={"username": "header-user", "password": "pass-word-1"}
        )
        invalid = client.post("/v1/auth/signup", json={"username": "x", "password": "pass-word-1"})
        for response in (good, bad, taken, compat, invalid):
            assert response.headers["Cache-Control"] == "no-store", response.request.url
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert (good.status_code, bad.status_code, taken.status_code) == (200, 401, 409)
        for response in (good, bad, taken, compat):
            assert int(response.headers["RateLimit-Limit"]) == 50, response.status_code
            assert "RateLimit-Remaining" in response.headers
        assert int(bad.headers["RateLimit-Remaining"]) < int(good.headers["RateLimit-Remaining"])
        for path in ("/healthz", "/openapi.json", "/v1/users/me"):
            assert client.get(path).headers["X-Content-Type-Options"] == "nosniff"


def test_a_numeric_string_exp_is_refused(make_api: Any) -> None:
    base_url = make_api()
    with httpx.Client(base_url=base_url) as client:
        headers = sign_up_and_log_in(client, "claims-user")
        me = client.get("/v1/users/me", headers=headers).json()
        now = int(time.time())
        claims = {"sub": "claims-user", "uid": me["id"], "typ": "access"}
        for exp, iat in ((str(now + 3600), now), (now + 3600, str(now)), (True, now)):
            token = jwt.encode({**claims, "exp": exp, "iat": iat}, TEST_SECRET, algorithm="HS256")
            response = client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (exp, iat)
        token = jwt.encode(
            {**claims, "exp": now + 3600, "iat": now}, TEST_SECRET, algorithm="HS256"
        )
        assert (
            client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )


def test_the_password_gate_bounds_concurrent_hashing() -> None:
    from api.security import HashingBusy, PasswordGate

    gate = PasswordGate(concurrency=1, wait_seconds=0.2)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with gate.slot():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        with pytest.raises(HashingBusy), gate.slot():
            pass
    finally:
        release.set()
        holder.join(10)
    with gate.slot():  # free again
        pass


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    from pydantic import ValidationError

    from fractal.settings import Settings

    assert Settings(trusted_proxies=["10.244.0.0/16", "::1"]).trusted_proxies == [
        "10.244.0.0/16",
        "::1",
    ]
    for bad in (["*"], ["traefik"], ["10.0.0.0/33"]):
        with pytest.raises(ValidationError, match="not an IP address or network"):
            Settings(trusted_proxies=bad)
