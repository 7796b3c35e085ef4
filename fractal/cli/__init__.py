"""The ``fractal`` command: render here, run the service, talk to a server.

This package is the top layer: the only one that assembles the engine, the worker, the
API and the embedded servers (``fractal up``).
"""

from __future__ import annotations

from fractal.cli import (  # noqa: F401 - each registers its commands
    account,
    animations,
    local,
    remote,
    service,
)
from fractal.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
