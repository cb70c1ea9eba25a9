"""The rows that belong to one contact, and their removal. Every statement is limited to
the workspace (and row-level security enforces it again on PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Text, cast, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Delete

from botplatform.kit.scoping import scoped
from botplatform.models import (
    AutomationEvent,
    AutomationRun,
    BotSession,
    ConsentEvent,
    Contact,
    ContactIdentity,
    Conversation,
    Event,
    InboundEvent,
    Message,
)


async def conversations(
    db: AsyncSession, ws: uuid.UUID, contact_id: uuid.UUID
) -> list[Conversation]:
    statement = (
        scoped(Conversation, ws)
        .where(Conversation.contact_id == contact_id)
        .order_by(Conversation.created_at, Conversation.id)
    )
    return list((await db.execute(statement)).scalars())


async def messages(
    db: AsyncSession, ws: uuid.UUID, conversation_ids: list[uuid.UUID]
) -> list[Message]:
    if not conversation_ids:
        return []
    statement = (
        scoped(Message, ws)
        .where(Message.conversation_id.in_(conversation_ids))
        .order_by(Message.created_at, Message.id)
    )
    return list((await db.execute(statement)).scalars())


async def media_in_use(db: AsyncSession, ws: uuid.UUID, keys: list[str]) -> set[str]:
    """Which of `keys` a message or a contact's avatar of the workspace still carries (media
    is content-addressed: the same bytes sent to two contacts are one file)."""
    if not keys:
        return set()
    statement = select(Message.media_key).where(
        Message.workspace_id == ws, Message.media_key.in_(keys)
    )
    avatars = select(ContactIdentity.profile_picture_key).where(
        ContactIdentity.workspace_id == ws, ContactIdentity.profile_picture_key.in_(keys)
    )
    return {key for key in (await db.execute(statement.union(avatars))).scalars() if key}


def _mentions(column: Any, needle: str) -> Any:
    return cast(column, Text).contains(needle, autoescape=True)


def _deletes(
    ws: uuid.UUID,
    contact: Contact,
    conversation_ids: list[uuid.UUID],
    external_ids: list[str],
) -> list[tuple[str, Delete]]:
    """Children first, so nothing relies on ON DELETE CASCADE (and each count is exact)."""
    in_conversations = Message.conversation_id.in_(conversation_ids)
    run_refs = [AutomationRun.contact_id == contact.id]
    event_refs = [AutomationEvent.contact_id == contact.id]
    if conversation_ids:
        run_refs.append(AutomationRun.conversation_id.in_(conversation_ids))
        event_refs.append(AutomationEvent.conversation_id.in_(conversation_ids))
    statements: list[tuple[str, Delete]] = [
        (
            "automation_runs",
            delete(AutomationRun).where(AutomationRun.workspace_id == ws, or_(*run_refs)),
        ),
        (
            "automation_events",
            delete(AutomationEvent).where(AutomationEvent.workspace_id == ws, or_(*event_refs)),
        ),
        (
            "bot_sessions",
            delete(BotSession).where(
                BotSession.workspace_id == ws, BotSession.conversation_id.in_(conversation_ids)
            ),
        ),
        ("messages", delete(Message).where(Message.workspace_id == ws, in_conversations)),
        (
            "conversations",
            delete(Conversation).where(
                Conversation.workspace_id == ws, Conversation.contact_id == contact.id
            ),
        ),
        (
            "consent_events",
            delete(ConsentEvent).where(
                ConsentEvent.workspace_id == ws, ConsentEvent.contact_id == contact.id
            ),
        ),
        (
            "contact_identities",
            delete(ContactIdentity).where(
                ContactIdentity.workspace_id == ws, ContactIdentity.contact_id == contact.id
            ),
        ),
        # Domain events (and, by cascade, their webhook deliveries) name the contact's id in
        # their payload: every message, conversation and contact event does.
        (
            "events",
            delete(Event).where(Event.workspace_id == ws, _mentions(Event.data, str(contact.id))),
        ),
    ]
    if external_ids:
        # Raw provider webhooks carry the phone number; pending ones may still hold other
        # contacts' messages and are left to be processed.
        quoted = [_mentions(InboundEvent.body, f'"{external_id}"') for external_id in external_ids]
        statements.append(
            (
                "inbound_events",
                delete(InboundEvent).where(
                    InboundEvent.workspace_id == ws,
                    InboundEvent.status != "pending",
                    or_(*quoted),
                ),
            )
        )
    statements.append(
        ("contacts", delete(Contact).where(Contact.workspace_id == ws, Contact.id == contact.id))
    )
    return statements


async def erase(
    db: AsyncSession,
    ws: uuid.UUID,
    contact: Contact,
    conversation_ids: list[uuid.UUID],
    external_ids: list[str],
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, statement in _deletes(ws, contact, conversation_ids, external_ids):
        result = await db.execute(statement.execution_options(synchronize_session=False))
        counts[table] = int(getattr(result, "rowcount", 0) or 0)
    return counts
