"""The studio: the web page at ``/`` and its assets under ``/studio/``, served from the
installed package (``api/studio/``), nothing from anywhere else.

The page's Content-Security-Policy allows scripts, styles and requests of this origin
only; images and videos may also come from the object store's public origin (presigned
URLs of posters and videos).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from api.context import public_base_url
from api.deps import ContextDep
from fractal.settings import Settings

STUDIO_DIR = Path(__file__).resolve().parent.parent / "studio"

router = APIRouter(include_in_schema=False)


def _origin(url: str, default_scheme: str = "http") -> str:
    parsed = urlparse(url if "://" in url else f"{default_scheme}://{url}")
    return f"{parsed.scheme}://{parsed.netloc}"


def media_origins(settings: Settings) -> list[str]:
    """Where presigned video and poster URLs point, besides this origin."""
    origins = [_origin(public_base_url(settings))]
    if settings.storage == "s3":
        endpoint = settings.s3_public_endpoint or settings.s3_endpoint
        if endpoint:
            origins.append(_origin(endpoint, "https" if settings.s3_secure else "http"))
    return origins


def content_security_policy(settings: Settings) -> str:
    media = " ".join(["'self'", *media_origins(settings)])
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media} blob: data:",
            f"media-src {media} blob:",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@router.get("/")
def studio_page(context: ContextDep) -> Response:
    return FileResponse(
        STUDIO_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": content_security_policy(context.settings),
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


class StudioFiles(StaticFiles):
    """The page's scripts and styles: revalidated on every load (their ETag makes that a
    304), so a new version of the service is never mixed with an old script."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def studio_files() -> StudioFiles:
    return StudioFiles(directory=STUDIO_DIR)
