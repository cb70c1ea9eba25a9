"""Every query of the bot domain, through the one scoping helper."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.conversation.repository import bot_session_locked, locked_here
from botplatform.kit import core
from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import Bot, BotSession, BotVersion, Conversation, Message


def list_statement(workspace_id: uuid.UUID) -> Select[Any]:
    return scoped(Bot, workspace_id)


async def get(db: AsyncSession, workspace_id: uuid.UUID, bot_id: uuid.UUID) -> Bot:
    found = (
        await db.execute(scoped(Bot, workspace_id).where(Bot.id == bot_id))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("Bot not found.", code="bot_not_found")
    return found


def versions_statement(workspace_id: uuid.UUID, bot_id: uuid.UUID) -> Select[Any]:
    return scoped(BotVersion, workspace_id).where(BotVersion.bot_id == bot_id)


async def get_version(
    db: AsyncSession, workspace_id: uuid.UUID, bot_id: uuid.UUID, version_id: uuid.UUID
) -> BotVersion:
    statement = versions_statement(workspace_id, bot_id).where(BotVersion.id == version_id)
    found: BotVersion | None = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise NotFound("Bot version not found.", code="bot_version_not_found")
    return found


async def version_by_number(
    db: AsyncSession, workspace_id: uuid.UUID, bot_id: uuid.UUID, number: int
) -> BotVersion:
    statement = versions_statement(workspace_id, bot_id).where(BotVersion.number == number)
    found: BotVersion | None = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"This bot has no version {number}.", code="bot_version_not_found")
    return found


async def find_version(
    db: AsyncSession, workspace_id: uuid.UUID, version_id: uuid.UUID
) -> BotVersion | None:
    statement = scoped(BotVersion, workspace_id).where(BotVersion.id == version_id)
    return (await db.execute(statement)).scalar_one_or_none()


async def last_number(db: AsyncSession, workspace_id: uuid.UUID, bot_id: uuid.UUID) -> int:
    statement = select(func.max(BotVersion.number)).where(
        BotVersion.workspace_id == workspace_id, BotVersion.bot_id == bot_id
    )
    return int((await db.execute(statement)).scalar() or 0)


async def session_for(
    db: AsyncSession, workspace_id: uuid.UUID, conversation_id: uuid.UUID
) -> BotSession | None:
    known = bot_session_locked(db, conversation_id)
    if known is not None and known.workspace_id == workspace_id:
        return known  # read with the conversation's lock, in this transaction
    statement = scoped(BotSession, workspace_id).where(
        BotSession.conversation_id == conversation_id
    )
    return (await db.execute(statement)).scalar_one_or_none()


async def session_made(
    db: AsyncSession, workspace_id: uuid.UUID, conversation_id: uuid.UUID
) -> BotSession:
    """The conversation's bot session, made idle when it has none. Made by the unique key
    (`ON CONFLICT DO NOTHING`): when two transactions make it at once (two agents' first
    replies), the second waits for the first, writes nothing and reads the row it made,
    instead of failing on the constraint."""
    found = await session_for(db, workspace_id, conversation_id)
    if found is not None:
        return found
    row = {"workspace_id": workspace_id, "conversation_id": conversation_id, "status": "idle"}
    row |= {"variables": {}, "attempts": 0, "step": 0}
    made = await core.insert_loaded(db, BotSession, row, conflict=["conversation_id"])
    if made is not None:
        return made
    found = await session_for(db, workspace_id, conversation_id)  # committed by the other
    if found is None:
        raise RuntimeError(f"bot session of {conversation_id} neither made nor found")
    return found


async def get_session(
    db: AsyncSession, workspace_id: uuid.UUID, session_id: uuid.UUID
) -> BotSession | None:
    statement = scoped(BotSession, workspace_id).where(BotSession.id == session_id)
    return (await db.execute(statement)).scalar_one_or_none()


async def lock_conversation(
    db: AsyncSession, workspace_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    """The conversation, row-locked on PostgreSQL: one bot step at a time per conversation.
    No query when this transaction locked it already, at its first read (`record_inbound`
    for a channel a live bot serves): the row in the session is the row in the database."""
    if locked_here(db, conversation_id):
        held = await db.get(Conversation, conversation_id)  # from the session, as a rule
        if held is not None and held.workspace_id == workspace_id:
            return held
    statement = (
        scoped(Conversation, workspace_id)
        .where(Conversation.id == conversation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await db.execute(statement)).scalar_one_or_none()


async def inbound_count(
    db: AsyncSession, workspace_id: uuid.UUID, conversation_id: uuid.UUID, limit: int = 2
) -> int:
    statement = (
        scoped(Message, workspace_id)
        .with_only_columns(Message.id)  # counted, not loaded
        .where(Message.conversation_id == conversation_id, Message.direction == "inbound")
        .limit(limit)
    )
    return len((await db.execute(statement)).all())
