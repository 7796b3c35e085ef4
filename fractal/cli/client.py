"""The command-line client's plumbing: the saved token and the API calls it makes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import platformdirs

from api import paths
from fractal.states import ACTIVE_STATES

DEFAULT_API = "http://127.0.0.1:8000"
TaskJson = dict[str, Any]
T = TypeVar("T")


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


def forget_credentials() -> bool:
    """Delete the saved token; False if there was none."""
    path = credentials_path()
    if not path.exists():
        return False
    path.unlink()
    return True


def saved_api() -> str | None:
    """The API the saved token is for (even an expired one), if any."""
    try:
        return str(json.loads(credentials_path().read_text())["api"])
    except (OSError, ValueError, KeyError):
        return None


class ApiError(Exception):
    """The API refused a request: its status, what it said, and how long to wait (429)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        try:
            body = response.json()
            detail = body.get("detail") if isinstance(body, dict) else body
        except ValueError:
            detail = response.text[:200]
        self.detail = detail
        retry_after = response.headers.get("retry-after", "")
        self.retry_after = int(retry_after) if retry_after.isdigit() else None
        super().__init__(f"{response.status_code}: {detail}")

    def problems(self) -> list[str]:
        """The refusal in plain lines: one ``field: reason`` per invalid field."""
        if isinstance(self.detail, list):
            lines = []
            for item in self.detail:
                if not isinstance(item, dict):
                    lines.append(str(item))
                    continue
                # FastAPI's loc starts with where the value was: body, query, path.
                loc = [str(part) for part in item.get("loc", ())]
                if loc and loc[0] in ("body", "query", "path", "header"):
                    loc = loc[1:]
                message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
                lines.append(f"{'.'.join(loc) or 'request'}: {message}")
            return lines
        return [str(self.detail) if self.detail else "no reason given"]

    def explain(self) -> str:
        """What a person should read: the reason and, where it helps, what to do."""
        reason = "; ".join(self.problems())
        if self.status_code == 401:
            return f"{reason} (log in again: fractal login)"
        if self.status_code == 404:
            return "not found (or not yours)"
        if self.status_code == 422:
            return "refused:\n  " + "\n  ".join(self.problems())
        if self.status_code == 429:
            wait = f"; retry in {self.retry_after} s" if self.retry_after else ""
            return f"too many requests: {reason}{wait}"
        if self.status_code >= 500:
            return f"the service is unavailable ({self.status_code}): {reason}; try again later"
        return f"{reason} ({self.status_code})"


@dataclass(frozen=True)
class ServerEvent:
    """One Server-Sent Event: ``event`` (default ``message``), its ``data`` and ``id``."""

    event: str
    data: str
    id: str | None = None


def iter_server_events(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """The events of a ``text/event-stream`` given line by line (comments skipped)."""
    event, event_id = "message", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield ServerEvent(event, "\n".join(data), event_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
    if data:
        yield ServerEvent(event, "\n".join(data), event_id)


def poll(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float | None = None,
    interval: float = 0.5,
    on_update: Callable[[T], None] | None = None,
) -> T:
    """Call ``fetch()`` every ``interval`` seconds until ``done(answer)``; the answer.

    ``on_update`` sees every answer; past ``timeout`` seconds, TimeoutError.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        answer = fetch()
        if on_update is not None:
            on_update(answer)
        if done(answer):
            return answer
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"still not done after {timeout} s: {answer}")
        time.sleep(interval)


def state_label(task: TaskJson, *, short: bool = False) -> str:
    """The task's state as people read it: with why it waits for a worker (after a while
    without one) and whether it is being canceled."""
    label = str(task["state"])
    waiting = task.get("waiting")
    if waiting:
        label += " (waiting)" if short else f" ({waiting['message']})"
    if task.get("cancel_requested"):
        label += ", canceling"
    return label


def wait_for_task(
    fetch: Callable[[], TaskJson], until: Collection[str] = (), **options: Any
) -> TaskJson:
    """Poll a task (``fetch()`` answers its JSON) until its state is in ``until`` (default:
    any final state); ``options`` as for ``poll``."""

    def reached(task: TaskJson) -> bool:
        return task["state"] in until if until else task["state"] not in ACTIVE_STATES

    return poll(fetch, reached, **options)


class ApiClient:
    """The v1 API over HTTP, with the bearer token of a logged-in user (if any)."""

    def __init__(self, api: str = DEFAULT_API, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=api.rstrip("/"), headers=headers, timeout=30)

    def _ok(self, response: httpx.Response, *expected: int) -> httpx.Response:
        if response.status_code not in expected:
            raise ApiError(response)
        return response

    def log_in(self, username: str, password: str) -> tuple[str, int]:
        """A new access token and its lifetime in seconds."""
        response = self.http.post(paths.TOKEN, data={"username": username, "password": password})
        body = self._ok(response, 200).json()
        return body["access_token"], int(body["expires_in"])

    def sign_up(self, username: str, password: str) -> dict[str, Any]:
        body = {"username": username, "password": password}
        return dict(self._ok(self.http.post(paths.SIGNUP, json=body), 201).json())

    def me(self) -> dict[str, Any]:
        return dict(self._ok(self.http.get(f"{paths.USERS}/me"), 200).json())

    def submit(self, spec: dict[str, Any]) -> TaskJson:
        return dict(self._ok(self.http.post(paths.ANIMATIONS, json=spec), 202).json())

    def task(self, task_id: str) -> TaskJson:
        return dict(self._ok(self.http.get(f"{paths.ANIMATIONS}/{task_id}"), 200).json())

    def tasks(
        self, state: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page of the user's tasks, newest first: ``{items, next_cursor}``."""
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        if cursor:
            params["cursor"] = cursor
        return dict(self._ok(self.http.get(paths.ANIMATIONS, params=params), 200).json())

    def all_tasks(self, state: str | None = None) -> Iterator[TaskJson]:
        cursor = None
        while True:
            page = self.tasks(state, limit=100, cursor=cursor)
            yield from page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def cancel(self, task_id: str) -> TaskJson:
        """Cancel an active task (its JSON: canceled, or cancel requested); a finished one
        is left alone (ApiError 409)."""
        response = self.http.post(f"{paths.ANIMATIONS}/{task_id}/cancel")
        return dict(self._ok(response, 202).json())

    def delete(self, task_id: str) -> TaskJson | None:
        """Cancel an active task (its JSON, cancel requested) or delete a finished one (None)."""
        response = self._ok(self.http.delete(f"{paths.ANIMATIONS}/{task_id}"), 202, 204)
        return dict(response.json()) if response.status_code == 202 else None

    def events(self, task_id: str) -> Iterator[ServerEvent]:
        """The task's live progress (Server-Sent Events) until the server ends the stream."""
        url = f"{paths.ANIMATIONS}/{task_id}/events"
        timeout = httpx.Timeout(30, read=120)  # the server sends a keep-alive every 15 s
        with self.http.stream("GET", url, timeout=timeout) as response:
            if response.status_code != 200:
                response.read()
                raise ApiError(response)
            yield from iter_server_events(response.iter_lines())

    def follow(
        self, task_id: str, on_update: Callable[[TaskJson], None], attempts: int = 5
    ) -> TaskJson:
        """Follow the task's event stream until a final state (reconnecting when the
        connection drops); its final JSON."""
        failures = 0
        task: TaskJson | None = None
        while True:
            try:
                for event in self.events(task_id):
                    if event.event == "gone":
                        raise LookupError("the animation was deleted")
                    if event.event == "progress":
                        task = json.loads(event.data)
                        on_update(task)
                        failures = 0
            except httpx.TransportError:
                failures += 1
                if failures >= attempts:
                    raise
                time.sleep(min(2**failures, 10))
            if task is not None and task["state"] not in ACTIVE_STATES:
                return task

    def wait(self, task_id: str, **options: Any) -> TaskJson:
        """Poll the task until it is final (see ``wait_for_task`` for the options)."""
        return wait_for_task(lambda: self.task(task_id), **options)

    def download(self, url: str, output: Path) -> int:
        with httpx.stream("GET", url, timeout=120) as response:
            response.raise_for_status()
            with output.open("wb") as handle:
                for block in response.iter_bytes():
                    handle.write(block)
        return output.stat().st_size
