"""The one webhook route for every provider: verify → store raw → acknowledge → process.

The signature is checked on the raw bytes before anything is stored (a forged webhook gets
401 and leaves no trace); the body is stored once per channel (`dedupe_key` is its hash, so a
provider's redelivery is a no-op); the job that processes it leaves after the commit; the
answer follows the commit. `channels/intake.py` does the storing, grouping the webhooks that
arrive together into one transaction.

Two doors lead to it. `WebhookLane` stands in front of the whole application, before any
middleware, and takes the common case (a channel this process already knows, a valid
signature, within the rate limit) without FastAPI's routing, dependency solving, request
objects and middleware stack, which together cost several times the durable write itself.
It does inline, from precomputed parts, the little of that stack a provider's webhook needs:
the request id, the security headers, the request metrics under the route's template and the
access line (when INFO is logged). Everything else (the handshake, an unknown or disabled
channel, a bad signature, a refusal, an oversized body, a browser's cross-origin request, a
failure) goes on, untouched, to the application and the FastAPI route below, which answers
it with the platform's usual envelope.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.datastructures import Headers, State
from starlette.types import ASGIApp, Receive, Scope, Send

from botplatform.channels.base import immediate_answer_of
from botplatform.channels.intake import PROCESS_JOB, WebhookChannel
from botplatform.kit import metrics
from botplatform.kit.client_ip import client_ip, parse_networks
from botplatform.kit.envelope import Envelope
from botplatform.kit.errors import Forbidden
from botplatform.kit.middleware import (
    REQUEST_ID_HEADER,
    SecurityHeadersMiddleware,
    access_log,
    access_logged,
    replay_body,
    request_id_of,
    security_headers,
)
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
) -> Response:
    """Receives a provider webhook. 401 when unsigned or forged (nothing stored); 200 once the
    raw event is committed and its job queued, whether new or a redelivery."""
    channel = await runtime.intake.channel(provider, channel_id)
    body = await request.body()
    channel.adapter.verify(request.headers, body)
    answer = immediate_answer_of(channel.adapter, body)
    if answer is not None:  # e.g. Slack's url_verification: its challenge, nothing stored
        return PlainTextResponse(answer)
    decision = await runtime.ratelimiter.hit("webhooks", str(channel.workspace_id))
    decision.raise_if_denied()
    new = await runtime.intake.store(channel, body)
    return _acknowledgement(new)


def _acknowledgement(new: bool) -> Response:
    return Response(ACKNOWLEDGEMENTS.body(new), media_type="application/json")


class Acknowledgements:
    """The two answers of the route (new or a redelivery) in the platform's envelope, encoded
    once per second (the envelope's timestamp has one-second resolution) instead of once per
    webhook: this is the hottest route there is."""

    def __init__(self) -> None:
        self._second = -1
        self._bodies: tuple[bytes, bytes] = (b"", b"")

    def body(self, new: bool) -> bytes:
        second = int(time.time())
        if second != self._second:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
            self._bodies = (self._encode(False, stamp), self._encode(True, stamp))
            self._second = second
        return self._bodies[new]

    @staticmethod
    def _encode(new: bool, stamp: str) -> bytes:
        data = {"received": True, "duplicate": not new}
        return Envelope[dict[str, bool]](data=data, timestamp=stamp).model_dump_json().encode()


ACKNOWLEDGEMENTS = Acknowledgements()
_POST_ROUTE = next(r for r in router.routes if "POST" in getattr(r, "methods", ()))
#: The template the webhooks are counted under in /metrics, as for a request the router matched.
ROUTE_TEMPLATE: str = getattr(_POST_ROUTE, "path", "")


class WebhookLane:
    """The fast door to `receive` (see the module's docstring): the same checks in the same
    order, the same stored row, the same answer and headers; whatever it does not take, it
    hands to `app` (the application, middleware and all) untouched, its body replayed.

    `state` is the application's, where its lifespan puts the Runtime; `hsts`,
    `max_body_bytes` and `trusted_proxies` are the settings the skipped middleware use."""

    def __init__(
        self,
        app: ASGIApp,
        state: State,
        *,
        max_body_bytes: int,
        hsts: bool,
        trusted_proxies: list[str] | None = None,
    ) -> None:
        self.app = app
        self.state = state
        self.max_body_bytes = max_body_bytes
        self.trusted = parse_networks(trusted_proxies or [])
        # The headers SecurityHeadersMiddleware adds to an API answer, by the request's scheme.
        policy = SecurityHeadersMiddleware.API_POLICY
        self._secured = {
            https: security_headers(policy, hsts, {"scheme": "https" if https else "http"})
            for https in (False, True)
        }
        self._counted = metrics.HTTP_REQUESTS.labels("POST", ROUTE_TEMPLATE, "200")
        self._timed = metrics.HTTP_LATENCY.labels("POST", ROUTE_TEMPLATE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = await self._known_channel(scope)
        if channel is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        body, complete = await _read_body(receive, self.max_body_bytes)
        if body is None:  # the client left
            return
        if not complete:  # over the limit: the application refuses it (413)
            await self.app(scope, replay_body(body, receive, more_body=True), send)
            return
        if not await self._acknowledge(scope, send, channel, body):
            await self.app(scope, replay_body(body, receive), send)
            return
        self._timed.observe(time.perf_counter() - started)
        self._counted.inc()
        if access_logged():
            self._log(scope, started)

    async def _known_channel(self, scope: Scope) -> WebhookChannel | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        parts = scope["path"].split("/")
        if len(parts) != 4 or parts[1] != "webhooks":
            return None
        runtime: Runtime | None = getattr(self.state, "runtime", None)
        if runtime is None:
            return None
        try:
            channel_id = uuid.UUID(parts[3])
        except ValueError:
            return None
        for name, value in scope["headers"]:
            if name == b"origin":  # a browser's: CORS is the application's to answer
                return None
            if name == b"content-length" and (
                not value.isdigit() or int(value) > self.max_body_bytes
            ):
                return None  # the application refuses it before reading it (413)
        return await runtime.intake.known(parts[2], channel_id)

    async def _acknowledge(
        self, scope: Scope, send: Send, channel: WebhookChannel, body: bytes
    ) -> bool:
        """Stores and answers; False (nothing sent) when the application must answer."""
        try:
            channel.adapter.verify(Headers(scope=scope), body)
            if immediate_answer_of(channel.adapter, body) is not None:
                return False  # the route answers it
        except Exception:
            return False
        runtime: Runtime = self.state.runtime
        try:
            decision = await runtime.ratelimiter.hit("webhooks", str(channel.workspace_id))
        except Exception:
            # Redis is not answering: the route tries again and answers the failure (503).
            return False
        if not decision.allowed:
            # The route counts this request once more and answers 429 with its headers.
            return False
        try:
            new = await runtime.intake.store(channel, body)
        except Exception:
            # The route tries once more (the write is idempotent) and answers the failure.
            return False
        answer = ACKNOWLEDGEMENTS.body(new)
        request_id = scope.setdefault("state", {})["request_id"] = request_id_of(scope)
        headers = [
            (b"content-length", str(len(answer)).encode()),
            (b"content-type", b"application/json"),
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
            *self._secured[scope.get("scheme") == "https"],
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
        return True

    def _log(self, scope: Scope, started: float) -> None:
        """The line `RequestContextMiddleware` writes for every request."""
        access_log.info(
            "request",
            request_id=scope["state"]["request_id"],
            method="POST",
            path=scope["path"],
            status=200,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            client=client_ip(scope, self.trusted),
        )


def _within(content_length: bytes, limit: int) -> bool:
    return content_length.isdigit() and int(content_length) <= limit


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """The body (None when the client left), and False when it stopped reading at `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True
