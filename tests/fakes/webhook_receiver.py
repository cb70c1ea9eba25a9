"""A customer's webhook endpoint on loopback: records every request as received (headers and
raw body) and answers what the test scripted (status, headers, delay), 200 otherwise."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Scripted:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


class Receiver:
    def __init__(self) -> None:
        self.port = 0
        self.received: list[Received] = []
        self.script: list[Scripted] = []
        self.default = Scripted()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def reset(self) -> None:
        self.received.clear()
        self.script.clear()
        self.default = Scripted()

    def answer(self, *responses: Scripted) -> None:
        self.script.extend(responses)

    async def _handle(self, request: Request) -> Response:
        self.received.append(
            Received(request.url.path, dict(request.headers), await request.body())
        )
        scripted = self.script.pop(0) if self.script else self.default
        if scripted.delay:
            await asyncio.sleep(scripted.delay)
        return Response(scripted.body, scripted.status, headers=scripted.headers)


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        receiver.port = probe.getsockname()[1]
    app = Starlette(routes=[Route("/{path:path}", receiver._handle, methods=["POST", "GET"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=receiver.port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
