"""Bodies, headers and slow clients, over raw sockets against the real uvicorn server
(``api/server.py`` and ``api/body_guard.py``): nothing a client sends or withholds holds
the API's memory or a connection for long."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from fractal.settings import Settings
from tests.stack import make_settings, serve_api, sign_up_and_log_in

BIG = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str,
    temporal_address: str,
) -> Iterator[tuple[str, Settings]]:
    """An API (no worker) with short timeouts, so the slow-client tests are quick."""
    settings = make_settings(
        tmp_path_factory.mktemp("limits"),
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        header_timeout_seconds=1.0,
        body_timeout_seconds=1.0,
    )
    with serve_api(settings) as base_url:
        yield base_url, settings


def connect(settings: Settings) -> socket.socket:
    return socket.create_connection(("127.0.0.1", settings.api_port), timeout=10)


def read_answer(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
        if b"\r\n\r\n" in received and b"connection: close" not in received.lower():
            head, _, body = received.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                break
    return received


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def closed_by_server(sock: socket.socket, within: float) -> float:
    """Seconds until the server closed the connection (fails after ``within``)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < within:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    pytest.fail(f"the server kept the connection open for {within} s")


@pytest.mark.parametrize("path", ["/v1/animations", "/v1/auth/signup", "/sign-up", "/nowhere"])
def test_a_declared_large_body_is_refused_at_once_without_reading_it(
    guarded: tuple[str, Settings], path: str
) -> None:
    _, settings = guarded
    with connect(settings) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BIG}\r\n\r\n".encode()
        )
        # Not a byte of the body is sent: the answer must not wait for it.
        answer = read_answer(sock, timeout=5)
    assert status_of(answer) == 413, answer[:300]
    assert b"connection: close" in answer.lower()
    assert b"65536" in answer


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
    guarded: tuple[str, Settings],
) -> None:
    _, settings = guarded
    piece = b"x" * 16384
    sent = 0
    with connect(settings) as sock:
        sock.sendall(
            b"POST /v1/auth/signup HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        answer = b""
        sock.settimeout(0.05)
        while sent < BIG:
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        answer += read_answer(sock, timeout=5)
    assert status_of(answer) == 413, answer[:300]
    # Refused after the limit passed, long before the 50 MB were sent.
    assert sent < 2 * 1024 * 1024


def test_a_body_too_slow_to_arrive_gets_408_and_the_connection_closes(
    guarded: tuple[str, Settings],
) -> None:
    _, settings = guarded
    with connect(settings) as sock:
        sock.sendall(
            b"POST /v1/auth/signup HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"username": '
        )
        started = time.monotonic()
        answer = read_answer(sock, timeout=10)
        elapsed = time.monotonic() - started
    assert status_of(answer) == 408, answer[:300]
    assert elapsed < 5


def test_a_slowloris_head_is_cut_off(guarded: tuple[str, Settings]) -> None:
    """Headers dribbled a byte at a time: closed at the header timeout (1 s here), not
    kept for as long as the client keeps sending."""
    _, settings = guarded
    with connect(settings) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 15:
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.25)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        elapsed = time.monotonic() - started
    assert closed, "the slowloris connection was never closed"
    assert elapsed < 6


def test_a_connection_that_never_speaks_is_closed(guarded: tuple[str, Settings]) -> None:
    _, settings = guarded
    with connect(settings) as sock:
        assert closed_by_server(sock, within=10) < 6


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(
    guarded: tuple[str, Settings],
) -> None:
    _, settings = guarded
    with connect(settings) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert status_of(read_answer(sock, timeout=5)) == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: te")  # and then nothing more
        assert closed_by_server(sock, within=10) < 6


def test_an_oversized_header_is_refused(guarded: tuple[str, Settings]) -> None:
    """A 1 MiB header (the limit is 16 KiB): never served; 400 and closed, or cut off."""
    _, settings = guarded
    with connect(settings) as sock:
        try:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: "
                + b"a" * (1024 * 1024)
                + b"\r\n\r\n"
            )
        except (BrokenPipeError, ConnectionResetError):
            return  # refused before all of it was sent
        answer = read_answer(sock, timeout=5)
    assert answer, "no answer and no close"
    assert status_of(answer) == 400, answer[:300]


def test_a_head_over_the_limit_is_answered_not_reset(guarded: tuple[str, Settings]) -> None:
    """A preview whose spec in the URL passes the head limit (1 MiB): the client sends it
    all and reads the 400 (a lingering close), where closing at once with its bytes unread
    made the kernel reset the connection and the client saw only "connection reset"."""
    _, settings = guarded
    for _ in range(3):
        with connect(settings) as sock:
            sock.sendall(
                b"GET /v1/preview?spec=" + b"7" * (1024 * 1024) + b" HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            answer = read_answer(sock, timeout=5)
        assert status_of(answer) == 400, answer[:300]
        assert b"a request head is at most" in answer


def test_ordinary_requests_still_pass(guarded: tuple[str, Settings]) -> None:
    base_url, _ = guarded
    with httpx.Client(base_url=base_url) as client:
        headers = sign_up_and_log_in(client, "ordinary-user")
        assert client.get("/v1/users/me", headers=headers).status_code == 200
        # Just under the limit is still read and judged on its content.
        padding = "x" * (64 * 1024 - 200)
        near = client.post("/v1/auth/signup", json={"username": "pad-user", "password": padding})
        assert near.status_code == 422
        assert near.json()["detail"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    ("path", "body", "auth"),
    [
        (
            "/v1/auth/signup",
            {"username": "extra-1", "password": "pass-word-1", "admin": True},
            False,
        ),
        ("/sign-up", {"username": "extra-2", "password": "pass-word-1", "role": "x"}, False),
        ("/sign-in", {"username": "extra-3", "password": "pass-word-1", "x": 1}, False),
        ("/add", {"z_re": 0.1, "z_im": 0.2, "width": 4000}, True),
        ("/v1/animations", {"frames": 2, "owner": "someone-else"}, True),
        ("/v1/animations", {"c": {"re": 0.1, "im": 0.1, "extra": 1}}, True),
        ("/v1/animations/estimate", {"frames": 2, "owner": "someone-else"}, False),
        ("/v1/preview", {"frame": 0, "quality": 100}, False),
        ("/v1/preview", {"spec": {"frames": 2, "extra": 1}}, False),
    ],
)
def test_unknown_fields_are_refused_everywhere(
    guarded: tuple[str, Settings], path: str, body: dict, auth: bool
) -> None:
    base_url, _ = guarded
    with httpx.Client(base_url=base_url) as client:
        headers = sign_up_and_log_in(client, f"extra-{abs(hash(path + str(body))) % 10**8}")
        response = client.post(path, json=body, headers=headers if auth else {})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["type"] == "extra_forbidden"


def test_unknown_form_fields_are_refused(guarded: tuple[str, Settings]) -> None:
    base_url, _ = guarded
    with httpx.Client(base_url=base_url) as client:
        sign_up_and_log_in(client, "form-user")
        form = {"username": "form-user", "password": "pass-word-1"}
        assert client.post("/v1/auth/token", data=form).status_code == 200
        extra = client.post("/v1/auth/token", data={**form, "is_admin": "1"})
        assert extra.status_code == 422
        assert extra.json()["detail"][0]["loc"] == ["body", "is_admin"]
        # What Swagger's Authorize button sends stays accepted.
        swagger = {**form, "grant_type": "password", "scope": "", "client_id": "x"}
        assert client.post("/v1/auth/token", data=swagger).status_code == 200
