"""The original service's routes, end to end."""

from __future__ import annotations

import httpx
from jose import jwt

from fractal.cli.client import poll
from tests.stack import Stack


def test_compat_flow(local_stack: Stack) -> None:
    with local_stack.client() as client:
        credentials = {"username": "legacy", "password": "legacy-pass"}
        created = client.post("/sign-up", json=credentials)
        assert created.status_code == 201
        assert created.json()["username"] == "legacy" and created.json()["password"] == ""
        assert client.post("/sign-up", json=credentials).status_code == 409
        assert client.post("/sign-in", json={**credentials, "password": "x"}).status_code == 401
        signed_in = client.post("/sign-in", json=credentials)
        assert signed_in.status_code == 201
        assert signed_in.json()["token_type"] == "Bearer"
        claims = jwt.get_unverified_claims(signed_in.json()["access_token"])
        assert claims["sub"] == "legacy" and claims["exp"] > claims["iat"]
        headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}

        added = client.post("/add", json={"z_re": -0.7, "z_im": 0.27}, headers=headers)
        assert added.status_code == 201, added.text
        task = added.json()
        assert task["z_re"] == -0.7 and task["z_im"] == 0.27 and task["url"] == ""
        assert task["state"] in ("READY", "RUNNING")

        def read_task() -> dict:
            polled = client.get(f"/task/{task['id']}", headers=headers)
            assert polled.status_code == 201
            return dict(polled.json())

        task = poll(
            read_task, lambda t: t["state"] in ("DONE", "FAILED"), timeout=120, interval=0.2
        )
        assert task["state"] == "DONE"
        assert httpx.get(task["url"]).status_code == 200
        assert client.post("/add", json={"z_re": 9, "z_im": 0}, headers=headers).status_code == 422

        assert client.delete("/delete-user", headers=headers).status_code == 204
        assert client.post("/sign-in", json=credentials).status_code == 401
        assert client.get(f"/task/{task['id']}", headers=headers).status_code == 401
    assert local_stack.store().list_keys(f"videos/{task['id']}") == []
