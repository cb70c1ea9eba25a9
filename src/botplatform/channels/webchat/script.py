"""Serves the widget: one plain script (static/widget.js, no framework, no build step) with
the channel and the platform's address written in, cached by browsers and proxies and
revalidated by ETag."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

SOURCE = Path(__file__).parent / "static" / "widget.js"
PLACEHOLDER = "/*@CONFIG@*/null"
MAX_AGE_SECONDS = 300


@lru_cache(maxsize=1)
def _source() -> str:
    return SOURCE.read_text()


@lru_cache(maxsize=256)
def _built(channel_id: str, base_url: str) -> tuple[bytes, str]:
    config = json.dumps({"channel": channel_id, "base": base_url.rstrip("/")})
    body = _source().replace(PLACEHOLDER, config, 1).encode()
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def response(channel_id: str, base_url: str, request: Request) -> Response:
    body, etag = _built(channel_id, base_url)
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={MAX_AGE_SECONDS}",
        # Loaded by other sites' pages: it must not be limited to our own origin.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)
