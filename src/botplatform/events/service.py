"""Emitting a domain event: one `events` row, one delivery per subscribed endpoint (its job
leaves after commit), and a live message to dashboards after commit. Flushes, never commits.

    await emit(db, workspace_id, "message.received", payloads.message_event(message, contact_id))
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.db import after_commit
from botplatform.events import payloads, repository
from botplatform.events.catalog import EVENT_TYPES
from botplatform.events.live import LIVE_HUB, LiveHub
from botplatform.events.payloads import envelope
from botplatform.kit import clock
from botplatform.models import Conversation, Event, Message, WebhookDelivery
from botplatform.worker.jobs import enqueue

DELIVER_JOB = "deliver_webhook"
_LIVE_PENDING = "live_pending"


async def emit(
    db: AsyncSession, workspace_id: uuid.UUID, event_type: str, data: dict[str, Any]
) -> None:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    now = clock.utcnow()
    event = Event(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        type=event_type,
        version=EVENT_TYPES[event_type],
        data=data,
        created_at=now,
    )
    db.add(event)
    deliveries = [
        WebhookDelivery(
            id=uuid.uuid4(),
            workspace_id=workspace_id,
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=event_type,
            status="pending",
            attempt_count=0,
            next_attempt_at=now,
        )
        for endpoint in await repository.subscribed_endpoints(db, workspace_id, event_type)
    ]
    db.add_all(deliveries)
    await db.flush()
    for delivery in deliveries:
        enqueue(db, DELIVER_JOB, str(workspace_id), str(delivery.id))
    _stream_after_commit(
        db, workspace_id, envelope(event.id, event_type, event.version, workspace_id, now, data)
    )


def _stream_after_commit(
    db: AsyncSession, workspace_id: uuid.UUID, payload: dict[str, Any]
) -> None:
    hub = db.info.get(LIVE_HUB)
    if not isinstance(hub, LiveHub):
        return
    pending: dict[uuid.UUID, list[dict[str, Any]]] | None = db.info.get(_LIVE_PENDING)
    if pending is None:
        pending = db.info[_LIVE_PENDING] = {}

        def publish() -> None:
            batches: dict[uuid.UUID, list[dict[str, Any]]] = db.info.pop(_LIVE_PENDING, {})
            for ws, payloads in batches.items():
                hub.publish_soon(ws, payloads)

        after_commit(db, publish)
    pending.setdefault(workspace_id, []).append(payload)


async def emit_message(db: AsyncSession, event_type: str, message: Message) -> uuid.UUID | None:
    """A `message.*` event for this row (its contact found through the conversation); returns
    that contact's id."""
    conversation = await db.get(Conversation, message.conversation_id)
    contact_id = conversation.contact_id if conversation else None
    await emit(db, message.workspace_id, event_type, payloads.message_event(message, contact_id))
    return contact_id
