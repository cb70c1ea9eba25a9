"""The hook the rest of the platform calls when something rules may react to happens.

    await automation_events.record(db, ws, MESSAGE_CREATED, message_id=..., ...)

It stores an `automation_events` row in the caller's transaction and queues the job that
evaluates the rules once that transaction commits — only when the workspace has an enabled
rule for that event, so the message path pays one indexed query otherwise. Kept free of the
automation service's imports, so that the conversation and message services can call it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.memo import remember
from botplatform.kit.scoping import scoped
from botplatform.models import AutomationEvent, AutomationRule, Message
from botplatform.worker.jobs import enqueue

MESSAGE_CREATED = "message.created"
CONVERSATION_CREATED = "conversation.created"
CONVERSATION_RESOLVED = "conversation.resolved"
CONTACT_CREATED = "contact.created"
EVENTS = (MESSAGE_CREATED, CONVERSATION_CREATED, CONVERSATION_RESOLVED, CONTACT_CREATED)

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
    async def load() -> frozenset[str]:
        statement = (
            scoped(AutomationRule, workspace_id)
            .where(AutomationRule.enabled.is_(True))
            .with_only_columns(AutomationRule.event)
            .distinct()
        )
        return frozenset((await db.execute(statement)).scalars().all())

    return event in await remember(db, AutomationRule, workspace_id, load)


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


async def message_created(
    db: AsyncSession, message: Message, contact_id: uuid.UUID
) -> AutomationEvent | None:
    """A message came in or is going out (notes are not messages to rules)."""
    return await record(
        db,
        message.workspace_id,
        MESSAGE_CREATED,
        message_id=message.id,
        conversation_id=message.conversation_id,
        contact_id=contact_id,
        channel_id=message.channel_id,
    )
