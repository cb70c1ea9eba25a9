"""A customer's webhook endpoint on loopback: records every request as received (headers and
raw body) and answers what the test scripted (status, headers, delay), 200 otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.serving import serving


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
    app = Starlette(routes=[Route("/{path:path}", receiver._handle, methods=["POST", "GET"])])
    async with serving(app) as receiver.port:
        yield receiver
