"""Stored media, served to people who hold a short-lived signed URL (handed out with the
message by the API to callers allowed to read the conversation)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from botplatform.kit.errors import Forbidden, NotFound
from botplatform.media.storage import InvalidMediaUrl, MediaNotFound
from botplatform.runtime import RuntimeDep

router = APIRouter(tags=["media"])


@router.get("/media/{key:path}", response_class=Response)
async def get_media(
    key: str, runtime: RuntimeDep, token: Annotated[str, Query(max_length=1000)] = ""
) -> Response:
    try:
        runtime.media_urls.key_from(key, token)
    except (InvalidMediaUrl, ValueError) as exc:
        raise Forbidden(
            "This media link is invalid or has expired.", code="invalid_media_url"
        ) from exc
    try:
        data, content_type = await runtime.media.get(key)
    except MediaNotFound as exc:
        raise NotFound("No such media.", code="media_not_found") from exc
    return Response(
        data,
        media_type=content_type,
        headers={
            "Cache-Control": "private, max-age=300",
            "Content-Disposition": "inline",
            "X-Content-Type-Options": "nosniff",
        },
    )
