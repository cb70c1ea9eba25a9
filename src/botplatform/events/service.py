"""Emitting a domain event: one delivery per subscribed endpoint (its job
leaves after commit) with the `events` row it reads, and a live message to dashboards after
commit. Flushes, never commits.

    await emit(db, workspace_id, "message.received", payloads.message_event(message, contact_id))
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.db import after_commit
from botplatform.events import payloads
from botplatform.events.catalog import EVENT_TYPES
from botplatform.events.live import LIVE_HUB, LiveHub
from botplatform.events.payloads import envelope
from botplatform.kit import clock, core
from botplatform.models import Conversation, Event, Message, WebhookDelivery
from botplatform.webhook import cache as webhook_cache
from botplatform.worker.jobs import enqueue

DELIVER_JOB = "deliver_webhook"
_LIVE_PENDING = "live_pending"
_DEFERRED = "botplatform.deferred_events"
_UNHEARD = "botplatform.unheard_workspace"


async def anyone_receives(db: AsyncSession, workspace_id: uuid.UUID) -> bool:
    """Could an event of this workspace reach anyone now: an enabled webhook endpoint, or a
    dashboard socket watching it (both answers cached in process)? When not, a hot path may
    skip building its events' payloads: `emit_many` would drop them anyway."""
    if await webhook_cache.subscriptions(db, workspace_id):
        return True
    hub = db.info.get(LIVE_HUB)
    return not isinstance(hub, LiveHub) or await hub.watched(workspace_id)


async def emit(
    db: AsyncSession, workspace_id: uuid.UUID, event_type: str, data: dict[str, Any]
) -> None:
    await emit_many(db, workspace_id, [(event_type, data)])


async def emit_many(
    db: AsyncSession, workspace_id: uuid.UUID, events: list[tuple[str, dict[str, Any]]]
) -> None:
    """Emits several events of one workspace at once, in order: one multi-row INSERT for
    the event rows, one for the webhook deliveries, one live publish after commit. An event
    row exists to be delivered (a delivery's payload is read from it): where no endpoint
    subscribes to its type, none is written. Core statements rather than ORM objects: these
    rows are written once and never loaded back by this transaction."""
    if not events:
        return
    deferred: list[tuple[uuid.UUID, list[tuple[str, dict[str, Any]]]]] | None = db.info.get(
        _DEFERRED
    )
    if deferred is not None:
        if not unheard(db, workspace_id):
            deferred.append((workspace_id, events))
        return
    now = clock.utcnow()
    rows: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    # Asked once for all the events: each question to the process's cache checks what this
    # transaction changed, which costs as much as the session holds changed rows, so asking
    # per event made a batch of a broadcast's status webhooks quadratic (a fifth of its
    # CPU at 100 statuses).
    subscriptions = await webhook_cache.subscriptions(db, workspace_id)
    for event_type, data in events:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        event_id, version = uuid.uuid4(), EVENT_TYPES[event_type]
        endpoints = webhook_cache.subscribed(subscriptions, event_type)
        if endpoints:
            rows.append(_event_row(event_id, workspace_id, event_type, version, data, now))
        for endpoint_id in endpoints:
            deliveries.append(_delivery(workspace_id, endpoint_id, event_id, event_type, now))
        _stream_after_commit(
            db, workspace_id, envelope(event_id, event_type, version, workspace_id, now, data)
        )
    if rows:
        await core.insert_many(db, Event, rows)
        await core.insert_many(db, WebhookDelivery, deliveries)
        for delivery in deliveries:
            enqueue(db, DELIVER_JOB, str(workspace_id), str(delivery["id"]))


def defer_events(db: AsyncSession, unheard: uuid.UUID | None = None) -> None:
    """From now on, this transaction's events wait for `emit_deferred`. A channel batch
    applies its items one by one, and each emits its own events (a status update, a bot's
    message). Emitted at once, a batch's events take one INSERT for their rows and one for
    their deliveries, not two per item.

    `unheard`: a workspace whose events nobody can receive now (`anyone_receives` said no):
    they are dropped as they come, as `emit_many` would drop them, and `emit_message` builds
    no payload for them (a broadcast's three status webhooks per send each built one)."""
    db.info[_DEFERRED] = []
    if unheard is not None:
        db.info[_UNHEARD] = unheard


def unheard(db: AsyncSession, workspace_id: uuid.UUID) -> bool:
    """Are this workspace's events being dropped unheard (`defer_events`)?"""
    return db.info.get(_UNHEARD) == workspace_id and _DEFERRED in db.info


async def emit_deferred(db: AsyncSession) -> None:
    """Emits the events deferred since `defer_events`, in the order they came (after it,
    events are emitted at once again)."""
    deferred = db.info.pop(_DEFERRED, None) or []
    db.info.pop(_UNHEARD, None)
    by_workspace: dict[uuid.UUID, list[tuple[str, dict[str, Any]]]] = {}
    for workspace_id, events in deferred:
        by_workspace.setdefault(workspace_id, []).extend(events)
    for workspace_id, events in by_workspace.items():
        await emit_many(db, workspace_id, events)


def forget_deferred(db: AsyncSession) -> None:
    """Drops the deferred events (the batch that emitted them failed)."""
    db.info.pop(_DEFERRED, None)
    db.info.pop(_UNHEARD, None)


def _event_row(
    event_id: uuid.UUID,
    workspace_id: uuid.UUID,
    event_type: str,
    version: int,
    data: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "workspace_id": workspace_id,
        "type": event_type,
        "version": version,
        "data": data,
        "created_at": now,
    }


def _delivery(
    workspace_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "workspace_id": workspace_id,
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "event_type": event_type,
        "status": "pending",
        "attempt_count": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


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
    if not unheard(db, message.workspace_id):
        data = payloads.message_event(message, contact_id)
        await emit(db, message.workspace_id, event_type, data)
    return contact_id
