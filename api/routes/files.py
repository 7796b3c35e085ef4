"""Downloads from the local object store (videos, posters), through expiring HMAC-signed
URLs."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse

from api import paths
from api.deps import ContextDep
from fractal.storage import InvalidKey, LocalStore, media_type_of

router = APIRouter(prefix=paths.FILES, tags=["files"])


@router.get(
    "/{key:path}",
    response_class=FileResponse,
    responses={403: {"description": "bad or expired signature"}, 404: {}},
)
def download_file(
    key: str,
    context: ContextDep,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
) -> FileResponse:
    store = context.store
    if not isinstance(store, LocalStore):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="not found")
    if not store.signer.verify(key, expires, signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="invalid or expired signature")
    try:
        path = store.served_path(key)
    except (InvalidKey, FileNotFoundError):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="not found") from None
    # The signature is the authorisation: whoever has the link may keep the file until it
    # expires, but no shared cache may.
    max_age = max(0, expires - int(time.time()))
    return FileResponse(
        path,
        media_type=media_type_of(key),
        filename=path.name,
        headers={"Cache-Control": f"private, max-age={max_age}"},
    )
