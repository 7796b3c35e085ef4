"""The attacks of issue 8 against a running ``fractal up``: ``python -m bench.attacks``.

    python -m bench.attacks --api http://127.0.0.1:8765 --data-dir data --pid <fractal up's pid>

Each attack is run as an outsider would (plus, for the lesser findings, a local user who
can read what the data directory lets them), and what it gave is printed: status codes,
times, the API process's resident memory. docs/security.md has the table, measured on the
code before and after the fixes, one run each, on the same machine.

It creates accounts named ``attack-*``; run it against a throwaway data directory.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import socket
import stat
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

BIG = 50 * 1024 * 1024
REPORT: dict[str, Any] = {}


def record(name: str, value: Any) -> None:
    REPORT[name] = value
    print(f"{name}: {value}", flush=True)


def resident_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory:
    """Samples a process's resident size every 20 ms while in the block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self.before = resident_mib(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_mib(self.pid))
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def send(method: str, url: str, **options: Any) -> httpx.Response | None:
    """One request on a connection of its own; None when the server drops it."""
    try:
        return httpx.request(method.upper(), url, timeout=60, **options)
    except httpx.HTTPError:
        return None


def healthz_ms(api: str, samples: int = 5) -> float:
    times = []
    with httpx.Client(base_url=api, timeout=60) as client:
        for _ in range(samples):
            started = time.perf_counter()
            client.get("/healthz")
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def huge_post(api: str, path: str) -> tuple[int, float]:
    """50 MB: valid credentials padded with a field no route knows."""
    head = f'{{"username": "attack-{uuid.uuid4().hex[:8]}", "password": "pass-word-1", "pad": "'
    body = head.encode() + b"a" * (BIG - len(head) - 2) + b'"}'
    started = time.perf_counter()
    try:
        response = httpx.post(
            api + path,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        code = response.status_code
    except httpx.HTTPError:
        code = -1  # the server closed the connection while we were still sending
    return code, time.perf_counter() - started


def large_bodies(api: str, pid: int) -> None:
    record("healthz idle (ms)", round(healthz_ms(api), 1))
    code, seconds = huge_post(api, "/v1/animations")
    record("50 MB JSON to POST /v1/animations, no token", f"{code} after {seconds:.2f} s")
    code, seconds = huge_post(api, "/sign-up")
    record("50 MB JSON to POST /sign-up", f"{code} after {seconds:.2f} s")
    latencies: list[float] = []
    with PeakMemory(pid) as memory, ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(huge_post, api, "/v1/animations") for _ in range(4)]
        while not all(f.done() for f in futures):
            latencies.append(healthz_ms(api, 1))
        codes = [f.result()[0] for f in futures]
    record(
        "4 x 50 MB in parallel",
        f"codes {codes}, API {memory.before:.0f} -> peak {memory.peak:.0f} MiB, "
        f"healthz worst {max(latencies or [0]):.0f} ms",
    )


def raw(api: str) -> socket.socket:
    parsed = urlparse(api)
    return socket.create_connection((parsed.hostname, parsed.port), timeout=5)


def open_for(sock: socket.socket, send: Callable[[], None] | None, limit: float) -> str:
    """How long the server keeps the connection open (``send`` is called every second)."""
    started = time.monotonic()
    sock.settimeout(1.0)
    while time.monotonic() - started < limit:
        try:
            if send is not None:
                send()
            data = sock.recv(65536)
            if data == b"":
                return f"closed after {time.monotonic() - started:.1f} s"
            if data.startswith(b"HTTP/1.1"):
                code = data.split(b" ")[1].decode()
                return f"answered {code} after {time.monotonic() - started:.1f} s"
        except TimeoutError:
            continue
        except OSError:
            return f"closed after {time.monotonic() - started:.1f} s"
    return f"still open after {limit:.0f} s"


def slow_clients(api: str, limit: float) -> None:
    with raw(api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        record(
            "slowloris (a header byte a second)", open_for(sock, lambda: sock.sendall(b"X"), limit)
        )
    with raw(api) as sock:
        record("idle connection, nothing sent", open_for(sock, None, limit))
    with raw(api) as sock:
        sock.sendall(
            b"POST /sign-in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        record("body promised, never sent", open_for(sock, None, limit))
    with raw(api) as sock:
        try:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000_000 + b"\r\n\r\n"
            )
            answer = sock.recv(200).split(b"\r\n")[0].decode()
        except OSError as error:
            answer = f"connection closed ({type(error).__name__})"
        record("10 MB header", answer)


HOSTILE = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "lone surrogate": '"\\ud800"',
}


def hostile_values(api: str, token: str) -> None:
    schema = httpx.get(api + "/openapi.json").json()
    fields = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                ref = content["application/json"]["schema"].get("$ref", "")
                properties = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
                fields += [(method, path, name) for name in properties.get("properties", {})]
    errors = set()
    total = 0
    for method, path, field in fields:
        for name, value in HOSTILE.items():
            for headers in ({}, {"Authorization": f"Bearer {token}"}):
                total += 1
                response = send(
                    method,
                    api + path,
                    content=f'{{"{field}": {value}}}'.encode(),
                    headers={**headers, "Content-Type": "application/json"},
                )
                if response is None or response.status_code >= 500:
                    errors.add((path, field, name))
    for path in ("/v1/auth/signup", "/sign-up"):
        body = {"username": "attack-echo", "password": "Q" * 60_000}
        answer = send("post", api + path, json=body)
        record(
            f"60 kB password to {path}: answer size",
            "connection dropped"
            if answer is None
            else f"{answer.status_code}, {len(answer.content)} bytes",
        )
    record(
        "NaN/±Infinity/1e400/lone surrogate in every field",
        f"{len(errors)} distinct 500s in {total} requests",
    )


def enumeration(api: str) -> None:
    password = "p" * 4097
    codes = []
    for username in ("attack-known", "attack-nobody"):
        answer = send(
            "post", api + "/v1/auth/token", data={"username": username, "password": password}
        )
        codes.append("dropped" if answer is None else str(answer.status_code))
    record("4097-char password: existing / unknown user", " / ".join(codes))


def spoofed_limits(api: str) -> None:
    with httpx.Client(base_url=api, timeout=30) as client:
        codes = [
            client.post(
                "/v1/auth/token",
                data={"username": "attack-known", "password": f"guess-{n}"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(30)
        ]
        record(
            "30 logins, 30 spoofed X-Forwarded-For",
            f"{codes.count(429)} refused (429), {codes.count(401)} checked",
        )
        created = [
            client.post(
                "/v1/auth/signup",
                json={"username": f"attack-{uuid.uuid4().hex[:8]}", "password": "pass-word-1"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(15)
        ]
        record("15 sign-ups, 15 spoofed X-Forwarded-For", f"{created.count(201)} created")


def compat_policy(api: str) -> None:
    names = {
        "one-character password": ("attack-short", "x"),
        '" "': (" ", "pass-word-1"),
        '"alice "': ("attack-known ", "pass-word-1"),
        "Cyrillic look-alike": ("attack-kn\u043ewn", "pass-word-1"),
        "right-to-left override": ("attack-\u202eevil", "pass-word-1"),
        "zero-width space": ("attack-\u200bknown", "pass-word-1"),
        "case twin of an existing name": ("ATTACK-KNOWN", "pass-word-1"),
    }
    accepted = []
    with httpx.Client(base_url=api, timeout=30) as client:
        for what, (username, password) in names.items():
            if (
                client.post(
                    "/sign-up", json={"username": username, "password": password}
                ).status_code
                == 201
            ):
                accepted.append(what)
    record(
        "compatibility /sign-up, 7 confusable or weak credentials",
        f"{len(accepted)} accepted: {accepted}",
    )


def parallel_logins(api: str, pid: int) -> None:
    def login(n: int) -> int:
        return httpx.post(
            api + "/v1/auth/token",
            data={"username": "attack-known", "password": f"wrong-{n}"},
            headers={"X-Forwarded-For": f"192.0.2.{n}"},
            timeout=120,
        ).status_code

    with PeakMemory(pid) as memory, ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(login, range(40)))
    record(
        "40 logins at once",
        f"API {memory.before:.0f} -> peak {memory.peak:.0f} MiB; codes {sorted(set(codes))}",
    )


def work_cap(api: str, token: str) -> None:
    example = {"width": 3840, "height": 2160, "supersample": 4, "frames": 3600, "max_iter": 1}
    with httpx.Client(base_url=api, timeout=30) as client:
        headers = {"Authorization": f"Bearer {token}"}
        response = client.post("/v1/animations", json=example, headers=headers)
        if response.status_code == 202:  # do not let it render
            client.delete(f"/v1/animations/{response.json()['id']}", headers=headers)
        record(
            "4K x supersample 4 x 3600 frames, max_iter 1",
            f"{response.status_code} {response.text[:120]}",
        )


def headers_and_tokens(api: str, token: str, data_dir: Path) -> None:
    with httpx.Client(base_url=api, timeout=30) as client:
        good = client.post(
            "/v1/auth/token", data={"username": "attack-known", "password": "pass-word-1"}
        )
        bad = client.post(
            "/v1/auth/token", data={"username": "attack-known", "password": "nope-nope"}
        )
        record(
            "token answer headers (200 / 401)",
            f"Cache-Control {good.headers.get('cache-control')} / "
            f"{bad.headers.get('cache-control')}, "
            f"nosniff {good.headers.get('x-content-type-options')}, "
            f"RateLimit-Limit on 401 {bad.headers.get('ratelimit-limit')}",
        )
        secret = (data_dir / "jwt-secret").read_text().strip()
        me = client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"}).json()
        now = int(time.time())
        claims = {
            "sub": me["username"],
            "uid": me["id"],
            "iat": now,
            "exp": str(now + 3600),
            "typ": "access",
        }
        forged = _hs256(claims, secret)
        answer = client.get("/v1/users/me", headers={"Authorization": f"Bearer {forged}"})
        record('token with "exp" as a numeric string', str(answer.status_code))
        with contextlib.suppress(OSError):
            target = data_dir / "jwt-secret"
            link = data_dir / "objects" / "videos" / "attack-link.mp4"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(target)
            url = _local_link(api, secret, "videos/attack-link.mp4")
            response = client.get(url)
            link.unlink()
            record(
                "signed link to a symlink in the store",
                f"{response.status_code}, secret leaked: {secret in response.text}",
            )


def _hs256(claims: dict[str, Any], secret: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    head = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    signature = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _local_link(api: str, secret: str, key: str) -> str:
    from fractal.storage import UrlSigner

    expires = int(time.time()) + 300
    signature = UrlSigner(secret.encode()).signature(key, expires)
    return f"{api}/v1/files/{key}?expires={expires}&signature={signature}"


def local_files(data_dir: Path) -> None:
    def mode(path: Path) -> str:
        return oct(stat.S_IMODE(path.stat().st_mode)) if path.exists() else "-"

    videos = sorted((data_dir / "objects" / "videos").glob("*.mp4"))
    record(
        "modes: data dir / a video / temporal.db",
        f"{mode(data_dir)} / {mode(videos[0]) if videos else '-'} / "
        f"{mode(data_dir / 'temporal' / 'temporal.db')}",
    )
    import redis

    # The worker's environment says where the embedded Redis listens (as a local user
    # reading /proc would find it).
    ports: list[int] = []
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"FRACTAL_DATA_DIR={data_dir}".encode() in environ:
                for entry in environ:
                    if entry.startswith(b"FRACTAL_REDIS_URL="):
                        ports.append(urlparse(entry.split(b"=", 1)[1].decode()).port or 0)
    try:
        answer = redis.Redis(host="127.0.0.1", port=ports[0], socket_timeout=2).ping()
        record("embedded Redis without a password", f"PING -> {answer}")
    except redis.RedisError as error:
        record("embedded Redis without a password", type(error).__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the process serving the API")
    parser.add_argument(
        "--slow-limit", type=float, default=30, help="seconds to watch slow clients"
    )
    parser.add_argument(
        "--group",
        choices=["all", "others", "limits"],
        default="all",
        help="limits: only the rate-limit attacks (run them against the default limits); "
        "others: everything else (run against generous auth limits, so that the per-address "
        "limit does not hide what each attack does)",
    )
    args = parser.parse_args()
    api = args.api.rstrip("/")
    with httpx.Client(base_url=api, timeout=30) as client:
        client.post("/v1/auth/signup", json={"username": "attack-known", "password": "pass-word-1"})
        token = client.post(
            "/v1/auth/token", data={"username": "attack-known", "password": "pass-word-1"}
        ).json()["access_token"]
        # One real video, so the store's file modes can be looked at.
        headers = {"Authorization": f"Bearer {token}"}
        tiny = {"width": 64, "height": 48, "frames": 12, "max_iter": 50}
        task = client.post("/v1/animations", json=tiny, headers=headers).json()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = client.get(f"/v1/animations/{task['id']}", headers=headers).json()["state"]
            if state in ("succeeded", "failed", "canceled"):
                break
            time.sleep(0.5)
    if args.group in ("all", "others"):
        headers_and_tokens(api, token, args.data_dir.resolve())
        hostile_values(api, token)
        enumeration(api)
        compat_policy(api)
        work_cap(api, token)
        large_bodies(api, args.pid)
        slow_clients(api, args.slow_limit)
        local_files(args.data_dir.resolve())
        parallel_logins(api, args.pid)
    if args.group in ("all", "limits"):
        spoofed_limits(api)
    print(json.dumps(REPORT))


if __name__ == "__main__":
    main()
