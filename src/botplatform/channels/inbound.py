"""The one webhook route for every provider: verify → store raw → acknowledge → process.

The signature is checked on the raw bytes before anything is stored (a forged webhook gets
401 and leaves no trace); the body is stored once per channel (`dedupe_key` is its hash, so a
provider's redelivery is a no-op); the job that processes it leaves after the commit; the
answer is immediate.
"""

from __future__ import annotations

import hashlib
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channel import repository
from botplatform.channels.registry import PROVIDERS, adapter_for
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Forbidden
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Channel, InboundEvent
from botplatform.runtime import RuntimeDep
from botplatform.worker.jobs import enqueue

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
PROCESS_JOB = "process_inbound_event"


async def _channel(db: AsyncSession, provider: str, channel_id: uuid.UUID) -> Channel:
    if provider not in PROVIDERS:
        raise repository.channel_not_found()
    channel = await repository.get_for_webhook(db, channel_id)
    if channel is None or channel.provider != provider:
        raise repository.channel_not_found()
    if channel.status != "active":
        raise Forbidden("This channel is disabled.", code="channel_disabled")
    await enter_workspace(db, channel.workspace_id)
    return channel


@router.get("/{provider}/{channel_id}", response_class=PlainTextResponse)
async def handshake(
    provider: str, channel_id: uuid.UUID, request: Request, db: DbSession, runtime: RuntimeDep
) -> PlainTextResponse:
    """The provider's subscription check (Meta: hub.mode, hub.verify_token, hub.challenge)."""
    channel = await _channel(db, provider, channel_id)
    adapter = adapter_for(channel, runtime.settings, runtime.http)
    challenge = adapter.handshake(request.query_params)
    if challenge is None:
        raise Forbidden("The verify token does not match.", code="invalid_verify_token")
    return PlainTextResponse(challenge)


async def _store(db: AsyncSession, channel: Channel, body: bytes) -> uuid.UUID | None:
    """Inserts the raw event unless this exact body was already received; its id, or None."""
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    event_id = uuid.uuid4()
    statement = (
        dialect.insert(InboundEvent)
        .values(
            id=event_id,
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            provider=channel.provider,
            dedupe_key=hashlib.sha256(body).hexdigest(),
            body=body.decode("utf-8", errors="replace"),
            status="pending",
        )
        .on_conflict_do_nothing(index_elements=["channel_id", "dedupe_key"])
        .returning(InboundEvent.id)
    )
    return (await db.execute(statement)).scalar_one_or_none()


@router.post("/{provider}/{channel_id}")
async def receive(
    provider: str, channel_id: uuid.UUID, request: Request, db: DbSession, runtime: RuntimeDep
) -> Envelope[dict[str, bool]]:
    """Receives a provider webhook. 401 when unsigned or forged (nothing stored); 200 once the
    raw event is committed, whether new or a redelivery."""
    if provider not in PROVIDERS:
        raise repository.channel_not_found()
    channel = await _channel(db, provider, channel_id)
    body = await request.body()
    adapter_for(channel, runtime.settings, runtime.http).verify(request.headers, body)
    decision = await runtime.ratelimiter.hit("webhooks", str(channel.workspace_id))
    decision.raise_if_denied()
    event_id = await _store(db, channel, body)
    if event_id is not None:
        enqueue(db, PROCESS_JOB, str(channel.workspace_id), str(event_id))
    return ok({"received": True, "duplicate": event_id is None})
