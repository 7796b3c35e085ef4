"""The worker's scratch space: temporary files of chunks, joins and posters, swept when
their worker is gone.

Every worker process owns one directory under the scratch root (``FRACTAL_WORKER_SCRATCH_DIR``,
default ``<temp>/fractal-scratch``) and holds an exclusive ``flock`` on a file in it for its
whole life. The kernel drops the lock when the process dies, however it dies (SIGKILL and
out-of-memory kills included), so at start a worker can tell a dead worker's directory from
a live one's on the same host: whichever it can lock is abandoned, and is deleted with what
a killed chunk or join left in it (46 MB for a 1080p join).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("fractal.worker")

LOCK_FILE = ".owner.lock"


def default_scratch_root() -> Path:
    return Path(tempfile.gettempdir()) / "fractal-scratch"


class Scratch:
    """This worker's scratch directory (created and locked on construction)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = root
        self.directory = root / f"worker-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.directory.mkdir(mode=0o700)
        self._lock = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @contextlib.contextmanager
    def temporary(self, prefix: str) -> Iterator[Path]:
        """A fresh directory for one attempt, removed when it ends."""
        with tempfile.TemporaryDirectory(prefix=prefix, dir=self.directory) as path:
            yield Path(path)

    def sweep_abandoned(self) -> tuple[int, int]:
        """Delete the directories of workers that are gone; (directories, bytes) freed."""
        directories = freed = 0
        for candidate in self.root.iterdir():
            if candidate == self.directory or not candidate.is_dir():
                continue
            if not _abandoned(candidate):
                continue
            size = _size_of(candidate)
            shutil.rmtree(candidate, ignore_errors=True)
            directories += 1
            freed += size
        if directories:
            log.info(
                "scratch: removed %d directories of workers that are gone (%.1f MB)",
                directories,
                freed / 1e6,
            )
        return directories, freed

    def close(self) -> None:
        os.close(self._lock)
        shutil.rmtree(self.directory, ignore_errors=True)


def _abandoned(directory: Path) -> bool:
    """True when no live process holds the directory's lock (or it never had one)."""
    try:
        descriptor = os.open(directory / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its worker is alive
    finally:
        os.close(descriptor)
    return True


def _size_of(directory: Path) -> int:
    total = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total
