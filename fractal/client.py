"""The command-line client's plumbing: the saved token and a few API calls."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import platformdirs

DEFAULT_API = "http://127.0.0.1:8000"


def credentials_path() -> Path:
    return Path(platformdirs.user_config_dir("fractal")) / "credentials.json"


def save_credentials(api: str, token: str, expires_in: int) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"api": api, "access_token": token, "expires_at": int(time.time()) + expires_in}
    # Created 0600 from the start: the token is never readable by others, not even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(data, handle)
    path.chmod(0o600)
    return path


def load_credentials() -> dict[str, Any]:
    path = credentials_path()
    if not path.exists():
        raise LookupError("not logged in: run `fractal login` first")
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("expires_at", 0) <= time.time():
        raise LookupError("the saved token expired: run `fractal login` again")
    return data


def log_in(api: str, username: str, password: str) -> tuple[str, int]:
    response = httpx.post(
        f"{api.rstrip('/')}/v1/auth/token",
        data={"username": username, "password": password},
        timeout=30,
    )
    if response.status_code != 200:
        raise PermissionError(_detail(response))
    body = response.json()
    return body["access_token"], int(body["expires_in"])


def _detail(response: httpx.Response) -> str:
    try:
        return f"{response.status_code}: {response.json().get('detail')}"
    except ValueError:
        return f"{response.status_code}: {response.text[:200]}"


class ApiClient:
    def __init__(self, api: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=api.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/v1/animations", json=spec)
        if response.status_code != 202:
            raise RuntimeError(_detail(response))
        return dict(response.json())

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/animations/{task_id}")
        response.raise_for_status()
        return dict(response.json())

    def download(self, url: str, output: Path) -> int:
        with httpx.stream("GET", url, timeout=120) as response:
            response.raise_for_status()
            with output.open("wb") as handle:
                for block in response.iter_bytes():
                    handle.write(block)
        return output.stat().st_size
