"""Both object stores against real backends: a directory and moto's S3 server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from fractal.storage import InvalidKey, LocalStore, ObjectStore, S3Store, UrlSigner


def _exercise(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 1000)
    assert store.put_file("segments/t1/00000.mp4", source) == 1000
    assert store.put_file("segments/t1/00001.mp4", source) == 1000
    assert store.exists("segments/t1/00000.mp4")
    assert store.list_keys("segments/t1/") == ["segments/t1/00000.mp4", "segments/t1/00001.mp4"]
    out = tmp_path / "out.bin"
    store.get_file("segments/t1/00001.mp4", out)
    assert out.read_bytes() == source.read_bytes()
    assert store.delete_prefix("segments/t1/") == 2
    assert store.list_keys("segments/t1/") == []
    assert not store.exists("segments/t1/00000.mp4")
    with pytest.raises(InvalidKey):
        store.exists("../etc/passwd")


def test_local_store_round_trip_and_signed_urls(tmp_path: Path) -> None:
    signer = UrlSigner(b"secret")
    store = LocalStore(tmp_path / "objects", signer, "http://testserver/v1/files")
    _exercise(store, tmp_path)
    url = store.presigned_url("videos/a.mp4", 60)
    assert url.startswith("http://testserver/v1/files/videos/a.mp4?expires=")
    query = httpx.URL(url).params
    expires, signature = int(query["expires"]), query["signature"]
    assert signer.verify("videos/a.mp4", expires, signature)
    assert not signer.verify("videos/b.mp4", expires, signature)
    assert not signer.verify("videos/a.mp4", expires + 1, signature)
    assert not signer.verify("videos/a.mp4", expires, signature, now=time.time() + 120)


def test_s3_store_against_moto(s3_endpoint: str, tmp_path: Path) -> None:
    store = S3Store(s3_endpoint, "test", "test", "bucket-storage-test")
    store.check()  # creates the bucket
    _exercise(store, tmp_path)
    source = tmp_path / "video.mp4"
    source.write_bytes(b"video bytes")
    store.put_file("videos/v.mp4", source)
    url = store.presigned_url("videos/v.mp4", 60)
    assert "X-Amz-Signature" in url and "X-Amz-Expires=60" in url
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"video bytes"


def test_s3_presigned_urls_use_the_public_endpoint(s3_endpoint: str) -> None:
    store = S3Store(
        s3_endpoint,
        "test",
        "test",
        "bucket-public",
        public_endpoint="media.example.com",
        public_secure=True,
    )
    assert store.presigned_url("videos/v.mp4", 60).startswith(
        "https://media.example.com/bucket-public/videos/v.mp4?"
    )
