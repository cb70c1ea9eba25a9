"""Writes the conversation cycles as conversations move: a customer's message opens one (or
reopens the conversation after a resolve), a resolve closes it, the bot's run marks it.
Called by the conversation, channel batch and bot code in the transaction of the move."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import scoped
from botplatform.models import BotSession, ConversationCycle
from botplatform.models.base import table_of

#: How a bot session's status ends a cycle's bot run.
BOT_OUTCOMES = {"finished": "completed", "handoff": "handoff"}


@dataclass(frozen=True)
class Opening:
    conversation_id: uuid.UUID
    channel_id: uuid.UUID
    at: datetime  # the customer's message that opens the cycle


async def open_cycles(db: AsyncSession, workspace_id: uuid.UUID, openings: list[Opening]) -> None:
    """Opens a cycle for each conversation that has none open; one that had cycles before is
    reopened. Idempotent, and safe against a concurrent opening (the partial unique key)."""
    if not openings:
        return
    ids = [o.conversation_id for o in openings]
    statement = (
        scoped(ConversationCycle, workspace_id)
        .where(ConversationCycle.conversation_id.in_(ids))
        .with_only_columns(ConversationCycle.conversation_id, ConversationCycle.resolved_at)
    )
    known = (await db.execute(statement)).all()
    had_cycle = {row[0] for row in known}
    open_now = {row[0] for row in known if row[1] is None}
    now = utcnow()
    rows = [
        _row(workspace_id, o, reopened=o.conversation_id in had_cycle, now=now)
        for o in openings
        if o.conversation_id not in open_now
    ]
    if rows:
        await db.execute(_insert_ignoring_open(db), rows)


def _row(workspace_id: uuid.UUID, o: Opening, *, reopened: bool, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "workspace_id": workspace_id,
        "conversation_id": o.conversation_id,
        "channel_id": o.channel_id,
        "opened_at": o.at,
        "reopened": reopened,
        "created_at": now,
        "updated_at": now,
    }


def _insert_ignoring_open(db: AsyncSession) -> Any:
    table = table_of(ConversationCycle)
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(
        index_elements=[table.c.conversation_id], index_where=text("resolved_at IS NULL")
    )


async def close_cycle(
    db: AsyncSession, workspace_id: uuid.UUID, conversation_id: uuid.UUID
) -> None:
    """The conversation was resolved: its open cycle (if any) ends now."""
    now = utcnow()
    await db.execute(
        _open_cycle(workspace_id, conversation_id).values(resolved_at=now, updated_at=now)
    )


async def note_bot(db: AsyncSession, session: BotSession) -> None:
    """A bot moved the conversation's run: the open cycle remembers which bot and version
    had it, where it stands, and whether it completed or handed off."""
    if session.bot_id is None:
        return
    values: dict[str, Any] = {
        "bot_id": session.bot_id,
        "bot_version_id": session.version_id,
        "bot_node_id": session.node_id,
        "updated_at": utcnow(),
    }
    if session.status in BOT_OUTCOMES:
        values["bot_outcome"] = BOT_OUTCOMES[session.status]
    await db.execute(_open_cycle(session.workspace_id, session.conversation_id).values(**values))


async def note_handoff(db: AsyncSession, session: BotSession) -> None:
    """An agent took the conversation over from a running bot."""
    if session.bot_id is None:
        return
    await db.execute(
        _open_cycle(session.workspace_id, session.conversation_id).values(
            bot_outcome="handoff", updated_at=utcnow()
        )
    )


def _open_cycle(workspace_id: uuid.UUID, conversation_id: uuid.UUID) -> Any:
    return (
        update(ConversationCycle)
        .where(
            ConversationCycle.workspace_id == workspace_id,
            ConversationCycle.conversation_id == conversation_id,
            ConversationCycle.resolved_at.is_(None),
        )
        .execution_options(synchronize_session=False)
    )
