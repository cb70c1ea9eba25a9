"""The one webhook route for every provider: verify → store raw → acknowledge → process.

The signature is checked on the raw bytes before anything is stored (a forged webhook gets
401 and leaves no trace); the body is stored once per channel (`dedupe_key` is its hash, so a
provider's redelivery is a no-op); the job that processes it leaves after the commit; the
answer follows the commit. `channels/intake.py` does the storing, grouping the webhooks that
arrive together into one transaction.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from botplatform.channels.intake import PROCESS_JOB
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Forbidden
from botplatform.runtime import RuntimeDep

__all__ = ["PROCESS_JOB", "router"]

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
    # Built here rather than by the response model: this is the hottest route there is.
    envelope = ok({"received": True, "duplicate": not new})
    return JSONResponse(envelope.model_dump(mode="json"))
