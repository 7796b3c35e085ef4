"""The lesser findings: symlinks in the store, private files, Redis's password, what
/readyz tells strangers."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import httpx
import pytest
import redis

from fractal.embedded import embedded_redis
from fractal.storage import LocalStore, UrlSigner
from tests.stack import TEST_SECRET, Stack, make_settings, serve_api


def test_the_file_route_does_not_follow_symlinks(local_stack: Stack, tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("not a video")
    store = local_stack.store()
    videos = store.root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    (videos / "link.mp4").symlink_to(secret)
    (store.root / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    try:
        for key in ("videos/link.mp4", "linked-dir/outside.txt"):
            url = store.presigned_url(key, 60)
            response = httpx.get(url)
            assert response.status_code == 404, (key, response.text)
            assert "not a video" not in response.text
    finally:
        (videos / "link.mp4").unlink()
        (store.root / "linked-dir").unlink()


def test_the_local_store_keeps_its_files_private(tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    source.write_bytes(b"video")
    store = LocalStore(tmp_path / "objects", UrlSigner(TEST_SECRET.encode()), "http://x")
    store.put_file("videos/a/b.mp4", source)
    for path in (store.root, store.root / "videos", store.root / "videos" / "a"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE((store.root / "videos/a/b.mp4").stat().st_mode) == 0o600


def test_downloads_may_be_kept_by_the_browser_only(local_stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "v.mp4"
    source.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    store = local_stack.store()
    store.put_file("videos/cache-test.mp4", source)
    response = httpx.get(store.presigned_url("videos/cache-test.mp4", 120))
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("private, max-age=")
    assert 100 <= int(response.headers["Cache-Control"].rsplit("=", 1)[1]) <= 120
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_embedded_redis_requires_its_password(tmp_path: Path) -> None:
    with embedded_redis(tmp_path / "redis", password="s3cret-pass") as url:
        assert ":s3cret-pass@" in url
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        anonymous = redis.Redis(host="127.0.0.1", port=port)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.close()
        config = tmp_path / "redis" / "redis.conf"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        # Not on the command line, where every local user reads it (ps).
        for pid in os.listdir("/proc"):
            with contextlib.suppress(OSError):
                if pid.isdigit():
                    assert b"s3cret-pass" not in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_readiness_names_the_dependency_not_its_error(
    tmp_path: Path, postgres_url: str, temporal_address: str
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=postgres_url,
        redis_url="redis://127.0.0.1:1/0",  # nothing listens there
        temporal_address=temporal_address,
    )
    with serve_api(settings) as base_url:
        response = httpx.get(f"{base_url}/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unreachable"
    for leak in ("Error", "127.0.0.1", "Connection", "refused", "("):
        assert leak not in response.text, response.text
