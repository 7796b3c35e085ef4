"""Authentication, token validation and ownership, over HTTP against the real stack."""

from __future__ import annotations

import base64
import json
import time

from jose import jwt

from tests.stack import TEST_SECRET, Stack, sign_up_and_log_in

SMALL = {"width": 64, "height": 48, "frames": 12, "max_iter": 50}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_wrong_password_and_unknown_user_are_401(local_stack: Stack) -> None:
    with local_stack.client() as client:
        sign_up_and_log_in(client, "bob")
        wrong = client.post("/v1/auth/token", data={"username": "bob", "password": "nope-nope"})
        assert wrong.status_code == 401
        unknown = client.post("/v1/auth/token", data={"username": "nobody", "password": "x"})
        assert unknown.status_code == 401
        taken = client.post("/v1/auth/signup", json={"username": "bob", "password": "another-1"})
        assert taken.status_code == 409
        short = client.post("/v1/auth/signup", json={"username": "bob2", "password": "short"})
        assert short.status_code == 422


def test_bad_tokens_are_401(local_stack: Stack) -> None:
    with local_stack.client() as client:
        headers = sign_up_and_log_in(client, "carol")
        token = headers["Authorization"].removeprefix("Bearer ")
        me = client.get("/v1/users/me", headers=headers).json()
        user_id = me["id"]
        assert jwt.get_unverified_claims(token)["sub"] == "carol" == me["username"]
        header, payload, signature = token.split(".")
        now = int(time.time())
        claims = {"sub": "carol", "uid": user_id, "iat": now, "typ": "access"}
        forged_payload = _b64({**claims, "exp": now + 3600, "admin": True})
        bad_tokens = {
            "tampered payload": f"{header}.{forged_payload}.{signature}",
            "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
            "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{forged_payload}.",
            "wrong key": jwt.encode(
                {**claims, "exp": now + 60},
                "k" * 40,
                algorithm="HS256",
            ),
            "expired": jwt.encode(
                {
                    "sub": "carol",
                    "uid": user_id,
                    "iat": now - 7200,
                    "exp": now - 3600,
                    "typ": "access",
                },
                TEST_SECRET,
                algorithm="HS256",
            ),
            "no exp": jwt.encode(
                claims,
                TEST_SECRET,
                algorithm="HS256",
            ),
            "other username": jwt.encode(
                {**claims, "sub": "mallory", "exp": now + 60},
                TEST_SECRET,
                algorithm="HS256",
            ),
            "garbage": "not-a-jwt",
        }
        for name, bad in bad_tokens.items():
            response = client.get("/v1/users/me", headers={"Authorization": f"Bearer {bad}"})
            assert response.status_code == 401, name
            assert response.headers["WWW-Authenticate"] == "Bearer"
        assert client.get("/v1/users/me").status_code == 401


def test_a_deleted_accounts_token_does_not_open_a_new_account_of_the_same_name(
    local_stack: Stack,
) -> None:
    with local_stack.client() as client:
        old = sign_up_and_log_in(client, "reused-name")
        assert client.delete("/v1/users/me", headers=old).status_code == 204
        new = sign_up_and_log_in(client, "reused-name")
        assert client.get("/v1/users/me", headers=new).status_code == 200
        assert client.get("/v1/users/me", headers=old).status_code == 401


def test_other_users_tasks_are_404(local_stack: Stack) -> None:
    with local_stack.client() as client:
        owner = sign_up_and_log_in(client, "owner")
        intruder = sign_up_and_log_in(client, "intruder")
        task = client.post("/v1/animations", json=SMALL, headers=owner).json()
        path = f"/v1/animations/{task['id']}"
        assert client.get(path, headers=intruder).status_code == 404
        assert client.get(f"{path}/video", headers=intruder).status_code == 404
        assert client.delete(path, headers=intruder).status_code == 404
        assert client.get(f"/task/{task['id']}", headers=intruder).status_code == 404
        assert client.get("/v1/animations", headers=intruder).json()["items"] == []
        assert client.get(path, headers=owner).status_code == 200


def test_health_and_readiness(local_stack: Stack, s3_stack: Stack) -> None:
    for stack in (local_stack, s3_stack):
        with stack.client() as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert set(ready.json()["checks"]) == {"postgres", "redis", "storage", "temporal"}


def test_api_refuses_default_secret() -> None:
    import pytest

    from api.security import check_jwt_secret
    from fractal.settings import Settings

    for secret in ("change-me", "", "short"):
        with pytest.raises(RuntimeError, match="FRACTAL_JWT_SECRET"):
            check_jwt_secret(Settings(jwt_secret=secret))
    check_jwt_secret(Settings(jwt_secret=TEST_SECRET))
