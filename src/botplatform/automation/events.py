"""The hook the rest of the platform calls when something rules may react to happens.

    await automation_events.record(db, ws, MESSAGE_RECEIVED, message_id=..., ...)

It stores an `automation_events` row in the caller's transaction and queues the job that
evaluates the rules once that transaction commits — only when the workspace has an enabled
rule for that event, which the process's cache answers (`automation.cache`). Kept free of the
automation service's imports, so that the conversation and message services can call it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.automation import cache as automation_cache

# The names are the event catalog's: a rule on `message.sent` runs when the webhook event of
# that name is emitted.
from botplatform.events.catalog import AUTOMATION_TRIGGERS as EVENTS
from botplatform.events.catalog import (
    CONTACT_CREATED,
    CONVERSATION_CREATED,
    CONVERSATION_RESOLVED,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
)
from botplatform.models import AutomationEvent, Message
from botplatform.worker.jobs import enqueue

__all__ = [
    "CONTACT_CREATED",
    "CONVERSATION_CREATED",
    "CONVERSATION_RESOLVED",
    "EVENTS",
    "MESSAGE_RECEIVED",
    "MESSAGE_SENT",
]

RUN_JOB = "run_automation_event"
_CHAIN = "automation_chain"


@contextmanager
def caused_by(db: AsyncSession, chain: list[str]) -> Iterator[None]:
    """Events recorded inside this block were caused by the rules in `chain` (the rule
    whose actions run now, after the rules that caused its own event): the loop guard."""
    previous = db.info.get(_CHAIN)
    db.info[_CHAIN] = chain
    try:
        yield
    finally:
        if previous is None:
            db.info.pop(_CHAIN, None)
        else:
            db.info[_CHAIN] = previous


async def has_rules(db: AsyncSession, workspace_id: uuid.UUID, event: str) -> bool:
    return event in await automation_cache.rule_events(db, workspace_id)


async def record(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    event: str,
    *,
    conversation_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
) -> AutomationEvent | None:
    if event not in EVENTS:
        raise ValueError(f"unknown automation event {event!r}")
    if not await has_rules(db, workspace_id, event):
        return None
    row = AutomationEvent(
        workspace_id=workspace_id,
        event=event,
        status="pending",
        conversation_id=conversation_id,
        contact_id=contact_id,
        message_id=message_id,
        channel_id=channel_id,
        chain=list(db.info.get(_CHAIN) or []),
    )
    db.add(row)
    await db.flush()
    enqueue(db, RUN_JOB, str(workspace_id), str(row.id))
    return row


async def message_received(
    db: AsyncSession, message: Message, contact_id: uuid.UUID
) -> AutomationEvent | None:
    """A customer's message came in (the moment `message.received` is emitted)."""
    return await _message_event(db, MESSAGE_RECEIVED, message, contact_id)


def with_chain(db: AsyncSession, content: dict[str, Any]) -> dict[str, Any]:
    """An outbound message queued by a rule's action keeps the chain of rules behind it, for
    its `message.sent` (recorded later by the send job, in another transaction): `content`
    with it, for the row about to be inserted."""
    chain = db.info.get(_CHAIN)
    return {**content, _CHAIN: list(chain)} if chain else content


async def message_sent(
    db: AsyncSession, message: Message, contact_id: uuid.UUID | None
) -> AutomationEvent | None:
    """The provider accepted an outbound message (the moment `message.sent` is emitted)."""
    if contact_id is None:
        return None
    chain = (message.content or {}).get(_CHAIN) or []
    with caused_by(db, [str(rule_id) for rule_id in chain]):
        return await _message_event(db, MESSAGE_SENT, message, contact_id)


async def _message_event(
    db: AsyncSession, event: str, message: Message, contact_id: uuid.UUID
) -> AutomationEvent | None:
    return await record(
        db,
        message.workspace_id,
        event,
        message_id=message.id,
        conversation_id=message.conversation_id,
        contact_id=contact_id,
        channel_id=message.channel_id,
    )
