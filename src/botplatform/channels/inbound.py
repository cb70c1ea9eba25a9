"""The one webhook route for every provider: verify → store raw → acknowledge → process.

The signature is checked on the raw bytes before anything is stored (a forged webhook gets
401 and leaves no trace); the body is stored once per channel (`dedupe_key` is its hash, so a
provider's redelivery is a no-op); the job that processes it leaves after the commit; the
answer follows the commit. `channels/intake.py` does the storing, grouping the webhooks that
arrive together into one transaction.

Two doors lead to it. `WebhookLane`, a pure ASGI layer inside the platform's middleware, takes
the common case (a channel this process already knows, a valid signature, within the rate
limit) without FastAPI's routing, dependency solving and request objects, which cost more
than the durable write itself. Everything else (the handshake, an unknown or disabled
channel, a bad signature, a refusal, a failure) goes on to the FastAPI route below, which
answers it with the platform's usual envelope.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botplatform.channels.intake import PROCESS_JOB, WebhookChannel
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Forbidden
from botplatform.kit.middleware import replay_body
from botplatform.runtime import RuntimeDep

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

__all__ = ["PROCESS_JOB", "WebhookLane", "router"]

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.get("/{provider}/{channel_id}", response_class=PlainTextResponse)
async def handshake(
    provider: str, channel_id: uuid.UUID, request: Request, runtime: RuntimeDep
) -> PlainTextResponse:
    """The provider's subscription check (Meta: hub.mode, hub.verify_token, hub.challenge)."""
    channel = await runtime.intake.channel(provider, channel_id)
    challenge = channel.adapter.handshake(request.query_params)
    if challenge is None:
        raise Forbidden("The verify token does not match.", code="invalid_verify_token")
    return PlainTextResponse(challenge)


@router.post("/{provider}/{channel_id}", response_model=Envelope[dict[str, bool]])
async def receive(
    provider: str, channel_id: uuid.UUID, request: Request, runtime: RuntimeDep
) -> JSONResponse:
    """Receives a provider webhook. 401 when unsigned or forged (nothing stored); 200 once the
    raw event is committed and its job queued, whether new or a redelivery."""
    channel = await runtime.intake.channel(provider, channel_id)
    body = await request.body()
    channel.adapter.verify(request.headers, body)
    decision = await runtime.ratelimiter.hit("webhooks", str(channel.workspace_id))
    decision.raise_if_denied()
    new = await runtime.intake.store(channel, body)
    return _acknowledgement(new)


def _acknowledgement(new: bool) -> JSONResponse:
    # Built here rather than by the response model: this is the hottest route there is.
    return JSONResponse(ok({"received": True, "duplicate": not new}).model_dump(mode="json"))


class WebhookLane:
    """The fast door to `receive` (see the module's docstring): the same checks in the same
    order, the same stored row, the same answer; whatever it does not take, it hands to the
    app untouched (its body replayed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: BaseRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = self._known_channel(scope)
        if channel is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client left
            return
        runtime: Runtime = scope["app"].state.runtime
        if not await self._acknowledge(scope, send, runtime, channel, body):
            await self.app(scope, replay_body(body, receive), send)

    def _known_channel(self, scope: Scope) -> WebhookChannel | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        parts = scope["path"].split("/")
        if len(parts) != 4 or parts[1] != "webhooks":
            return None
        try:
            channel_id = uuid.UUID(parts[3])
        except ValueError:
            return None
        runtime: Runtime = scope["app"].state.runtime
        return runtime.intake.cached(parts[2], channel_id)

    async def _acknowledge(
        self, scope: Scope, send: Send, runtime: Runtime, channel: WebhookChannel, body: bytes
    ) -> bool:
        """Stores and answers; False (nothing sent) when the FastAPI route must answer."""
        try:
            channel.adapter.verify(Headers(scope=scope), body)
        except Exception:
            return False
        decision = await runtime.ratelimiter.hit("webhooks", str(channel.workspace_id))
        if not decision.allowed:
            # The route counts this request once more and answers 429 with its headers.
            return False
        try:
            new = await runtime.intake.store(channel, body)
        except Exception:
            # The route tries once more (the write is idempotent) and answers the failure.
            return False
        self._label_for_metrics(scope, channel)
        await _acknowledgement(new)(scope, _nothing_to_receive, send)
        return True

    def _label_for_metrics(self, scope: Scope, channel: WebhookChannel) -> None:
        """What the router would have put in the scope, so /metrics counts these requests
        under the route's template like every other request."""
        if self._route is None:
            self._route = next(r for r in router.routes if "POST" in getattr(r, "methods", ()))
        scope["route"] = self._route
        scope["path_params"] = {"provider": channel.channel.provider, "channel_id": channel.id}


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}
