"""Serving an ASGI app on a loopback port for the length of a test (or a session): the fake
providers, customer endpoints, and the app itself for real browsers and WebSocket clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import uvicorn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def serving(
    app: Any, port: int | None = None, *, lifespan: Literal["on", "off"] = "off"
) -> AsyncIterator[int]:
    """Serves `app` on 127.0.0.1 (on `port`, or a free one) until the block ends; yields the
    port. `lifespan="off"` for an app whose lifespan already ran (the app under test)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan=lifespan)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():  # failed to start (port taken): say why
            await task
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
