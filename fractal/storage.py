"""Object storage for segments and videos: a local directory or S3 (MinIO, AWS, moto).

Keys are ``/``-separated paths such as ``segments/<task>/00003.mp4`` and
``videos/<task>.mp4``. Both stores hand out expiring download URLs: S3 presigns them,
the local store signs them with an HMAC that the API's file route checks.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import os
import re
import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlencode, urlparse

from fractal.settings import Settings


def segment_key(task_id: str, chunk_index: int) -> str:
    return f"segments/{task_id}/{chunk_index:05d}.mp4"


def segments_prefix(task_id: str) -> str:
    return f"segments/{task_id}/"


def segment_part_key(task_id: str, chunk_index: int, first_frame: int, stop_frame: int) -> str:
    """One part of a chunk stored in several (a checkpoint of a long chunk): frames
    ``first_frame .. stop_frame - 1``."""
    return f"segments/{task_id}/{chunk_index:05d}.{first_frame:06d}-{stop_frame:06d}.mp4"


def segment_parts_prefix(segment: str) -> str:
    """What the keys of a chunk's parts start with, from its segment key."""
    return segment.removesuffix(".mp4") + "."


_PART = re.compile(r"\.(\d{6})-(\d{6})\.mp4$")


def part_frames(key: str) -> tuple[int, int] | None:
    """(first, stop) frames of a part key; None for any other key."""
    match = _PART.search(key)
    return (int(match[1]), int(match[2])) if match else None


def video_key(task_id: str) -> str:
    return f"videos/{task_id}.mp4"


def poster_key(task_id: str) -> str:
    return f"videos/{task_id}.webp"


# What each kind of object is served as (the local store's downloads, S3 uploads).
MEDIA_TYPES = {".mp4": "video/mp4", ".webp": "image/webp", ".png": "image/png"}


def media_type_of(key: str) -> str:
    return MEDIA_TYPES.get(Path(key).suffix, "application/octet-stream")


# Writes that fail like this fail again: the store is read-only, full or refuses us.
PERMANENT_ERRNOS = (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM)
PERMANENT_S3_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccountProblem",
        "NoSuchBucket",
        "InvalidBucketName",
        "QuotaExceeded",
        "EntityTooLarge",
        "XMinioStorageFull",
        "XMinioAdminBucketQuotaExceeded",
    }
)


def permanent_failure(error: BaseException) -> str | None:
    """Why retrying a store operation that raised ``error`` cannot help, in words fit for
    the task's ``error`` (no path, no address); None for faults worth a retry."""
    if isinstance(error, OSError) and error.errno in PERMANENT_ERRNOS:
        return f"{os.strerror(error.errno)} ({errno.errorcode[error.errno]})"
    code = getattr(error, "code", None)
    if type(error).__name__ == "S3Error" and code in PERMANENT_S3_CODES:
        return f"S3 answered {code}"
    return None


PROBE_PREFIX = "probes/"


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path, content_type: str = "video/mp4") -> int: ...
    def get_file(self, key: str, path: Path) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def presigned_url(self, key: str, expires_seconds: int) -> str: ...
    def check(self) -> None:
        """Raise unless an object can be written, read back and deleted (a probe under
        ``probes/``): a store that answers but refuses writes is not ready."""


class InvalidKey(ValueError):
    pass


def _checked_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise InvalidKey(f"invalid object key {key!r}")
    return key


class UrlSigner:
    """Expiring HMAC-SHA256 signatures of (key, expiry) for the local store's URLs."""

    def __init__(self, secret: bytes) -> None:
        # A key of its own, so a signature can never be replayed as a JWT or vice versa.
        self._key = hmac.new(secret, b"fractal-local-store-urls", hashlib.sha256).digest()

    def signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        if expires < (time.time() if now is None else now):
            return False
        # Bytes, not str: compare_digest refuses non-ASCII strings (a hostile query).
        expected = self.signature(key, expires).encode()
        return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


class LocalStore:
    """Objects as files under ``root``, readable by this user only (directories 0700,
    files 0600: they are other people's videos).

    Its signed URLs point at ``download_url/<key>``: whoever serves the files (the API's
    file route) says where that is; a store opened without it (a worker) cannot sign.
    """

    def __init__(self, root: Path, signer: UrlSigner, download_url: str | None = None) -> None:
        self.root = root
        self.signer = signer
        self.download_url = download_url.rstrip("/") if download_url else None
        try:
            _private_directory(self.root)
        except OSError as error:
            # A read-only or full volume: the process starts, and readiness (``check``)
            # says the store cannot take a write.
            logging.getLogger("fractal.storage").warning(
                "the store directory %s cannot be prepared: %s", self.root, error
            )

    def path_of(self, key: str) -> Path:
        return self.root / _checked_key(key)

    def served_path(self, key: str) -> Path:
        """The file to serve for ``key``: a regular file reached from the root without a
        symbolic link anywhere on the way (a link placed in the store must not hand out
        what it points at); InvalidKey otherwise, FileNotFoundError if there is none."""
        current = self.root
        for part in _checked_key(key).split("/"):
            current = current / part
            if current.is_symlink():
                raise InvalidKey(f"{key!r} passes through a symbolic link")
        if not current.is_file():
            raise FileNotFoundError(key)
        return current

    def put_file(self, key: str, path: Path, content_type: str = "video/mp4") -> int:
        target = self.path_of(key)
        current = self.root
        for part in target.relative_to(self.root).parts[:-1]:
            current = current / part
            _private_directory(current)
        # Copy then rename: a reader never sees half a file, a rerun overwrites atomically.
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(path, partial)
        partial.chmod(0o600)
        partial.replace(target)
        return target.stat().st_size

    def get_file(self, key: str, path: Path) -> None:
        shutil.copyfile(self.path_of(key), path)

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> list[str]:
        # Only the directory the prefix ends in is walked, not the whole store.
        base = prefix.rpartition("/")[0]
        directory = self.root / base if base else self.root
        if not directory.is_dir():
            return []
        keys = (path.relative_to(self.root).as_posix() for path in directory.rglob("*"))
        return sorted(key for key in keys if key.startswith(prefix) and (self.root / key).is_file())

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        for key in keys:
            self.delete(key)
        directory = self.root / prefix.rstrip("/")
        if prefix.endswith("/") and directory.is_dir():
            shutil.rmtree(directory, ignore_errors=True)
        return len(keys)

    def presigned_url(self, key: str, expires_seconds: int) -> str:
        if self.download_url is None:
            raise RuntimeError("this local store was opened without a download URL")
        expires = int(time.time()) + expires_seconds
        query = urlencode({"expires": expires, "signature": self.signer.signature(key, expires)})
        return f"{self.download_url}/{quote(_checked_key(key))}?{query}"

    def check(self) -> None:
        if not self.root.is_dir():
            raise OSError(f"store directory {self.root} is missing")
        _probe(self)


def _private_directory(path: Path) -> None:
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


class S3Store:
    """A bucket on S3 or MinIO through the ``minio`` client; created if missing."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        public_endpoint: str | None = None,
        public_secure: bool | None = None,
    ) -> None:
        from minio import Minio

        self.bucket = bucket
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        # Presigned URLs embed the host in their signature, so they must be signed for the
        # endpoint the browser uses; signing needs no connection (the region is given).
        self.public_client = (
            Minio(
                public_endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure if public_secure is None else public_secure,
                region=region,
            )
            if public_endpoint
            else self.client
        )
        self._bucket_ready = False

    def ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        from minio.error import S3Error

        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as error:  # another process created it first
                if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_ready = True

    def put_file(self, key: str, path: Path, content_type: str = "video/mp4") -> int:
        self.ensure_bucket()
        self.client.fput_object(self.bucket, _checked_key(key), str(path), content_type)
        return path.stat().st_size

    def get_file(self, key: str, path: Path) -> None:
        self.client.fget_object(self.bucket, _checked_key(key), str(path))

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, _checked_key(key))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, _checked_key(key))

    def list_keys(self, prefix: str) -> list[str]:
        self.ensure_bucket()
        objects = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
        return sorted(obj.object_name for obj in objects if obj.object_name)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def presigned_url(self, key: str, expires_seconds: int) -> str:
        return self.public_client.presigned_get_object(
            self.bucket, _checked_key(key), expires=timedelta(seconds=expires_seconds)
        )

    def check(self) -> None:
        self.ensure_bucket()
        _probe(self)


def _probe(store: ObjectStore) -> None:
    """Write a small object, read it back and delete it."""
    import tempfile

    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}.probe"
    with tempfile.TemporaryDirectory(prefix="fractal-probe-") as scratch:
        written = Path(scratch) / "written"
        written.write_bytes(b"fractal readiness probe\n")
        store.put_file(key, written, "text/plain")
        try:
            read = Path(scratch) / "read"
            store.get_file(key, read)
            if read.read_bytes() != written.read_bytes():
                raise OSError("the store returned something else than the probe written")
        finally:
            store.delete(key)


def local_store_dir(settings: Settings) -> Path:
    return settings.storage_dir or settings.data_dir / "objects"


def make_store(settings: Settings, local_download_url: str | None = None) -> ObjectStore:
    """The store the settings describe (``FRACTAL_STORAGE=local|s3``).

    ``local_download_url``: where the local store's files are served (its signed URLs
    point there); S3 presigns for its own endpoint.
    """
    if settings.storage == "local":
        signer = UrlSigner(settings.jwt_secret.get_secret_value().encode())
        return LocalStore(local_store_dir(settings), signer, local_download_url)
    if not settings.s3_endpoint:
        raise ValueError("FRACTAL_STORAGE=s3 needs FRACTAL_S3_ENDPOINT")
    endpoint = settings.s3_endpoint
    parsed = urlparse(endpoint if "://" in endpoint else f"//{endpoint}")
    public = settings.s3_public_endpoint
    public_parsed = urlparse(public if public and "://" in public else f"//{public or ''}")
    return S3Store(
        parsed.netloc,
        settings.s3_access_key.get_secret_value() if settings.s3_access_key else "",
        settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else "",
        settings.s3_bucket,
        secure=settings.s3_secure if not parsed.scheme else parsed.scheme == "https",
        region=settings.s3_region,
        public_endpoint=public_parsed.netloc or None,
        public_secure=None if not public_parsed.scheme else public_parsed.scheme == "https",
    )
