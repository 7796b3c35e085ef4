"""A real browser for the studio's tests: Debian's Chromium driven by Playwright.

Playwright's own browser download cannot work here (no internet), so it drives the
system's ``/usr/bin/chromium``, which ``make test`` installs with apt-get when missing.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tests.stack import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
# Screenshots of every step land here (git-ignored).
ARTIFACTS = ROOT / "test-artifacts"


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium; fails (never skips) with the fix when it is not installed."""
    if not CHROMIUM.exists():
        raise AssertionError(
            f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def artifacts_dir(name: str) -> Path:
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def origin_of(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


class RequestLog:
    """Every URL a page asked for (navigations, scripts, images, fetches, media), and those
    its Content-Security-Policy stopped in the browser (they never reached the network)."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        self.blocked: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("requestfailed", self._failed)

    def _failed(self, request: Any) -> None:
        if request.failure == "csp":
            self.blocked.append(request.url)

    def outside(self, origin: str) -> list[str]:
        """What went to another origin over the network."""
        return [
            url
            for url in self.urls
            if not url.startswith(("data:", "blob:"))
            and origin_of(url) != origin
            and url not in self.blocked
        ]
