"""The ``fractal`` command: render here, run the service, talk to a server.

This package is the top layer: the only one that assembles the engine, the worker, the
API and the embedded servers (``fractal up``).
"""

from __future__ import annotations

from fractal.cli import local, remote, service  # noqa: F401 - each registers its commands
from fractal.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
