"""The one outgoing HTTP client of a process: pooled connections, explicit timeouts."""

from __future__ import annotations

import httpx

from botplatform import __version__

TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)


def create_http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        headers={"User-Agent": f"botplatform/{__version__}"},
        follow_redirects=False,
    )
