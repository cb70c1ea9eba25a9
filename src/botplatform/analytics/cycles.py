"""Writes the conversation cycles as conversations move: a customer's message opens one (or
reopens the conversation after a resolve), a resolve closes it, the bot's run marks it.
Called by the conversation, channel batch and bot code in the transaction of the move."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit import core
from botplatform.kit.clock import utcnow
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
    write = opening_cycles(db, workspace_id, openings)
    if write is not None:
        await core.run(db, *write)


def opening_cycles(
    db: AsyncSession, workspace_id: uuid.UUID, openings: list[Opening]
) -> core.Write | None:
    """`open_cycles` as one statement to run later (the channel batch sends it with its last
    writes, `core.together`): a conversation with an open cycle is left out by the partial
    unique key, and whether it had one before is asked in the statement itself, so nothing
    is read first."""
    if not openings:
        return None
    now = utcnow()
    rows = [_row(workspace_id, o, now=now) for o in openings]
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        return _OPENING[dialect], {name: [row[name] for row in rows] for name in _COLUMNS}
    return _OPENING[dialect], rows


def _row(workspace_id: uuid.UUID, o: Opening, *, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "workspace_id": workspace_id,
        "conversation_id": o.conversation_id,
        "channel_id": o.channel_id,
        "opened_at": o.at,
        "created_at": now,
        "updated_at": now,
    }


_COLUMNS: tuple[str, ...] = ("id", "workspace_id", "conversation_id", "channel_id", "opened_at")
_COLUMNS += ("created_at", "updated_at")


def _opening_statement(dialect: str) -> Any:
    """`INSERT … SELECT` of the new cycles, each with `reopened` = the conversation had a
    cycle before; on PostgreSQL from arrays (one prepared shape whatever the number of
    rows), on SQLite one row per execution (an `executemany`)."""
    table = table_of(ConversationCycle)
    earlier = table.alias("earlier")
    source: Any
    if dialect == "postgresql":
        arrays = [
            bindparam(name, type_=postgresql.ARRAY(table.c[name].type, dimensions=1))
            for name in _COLUMNS
        ]
        derived = func.unnest(*arrays).table_valued(*_COLUMNS).render_derived(name="new")
        values = [derived.c[name] for name in _COLUMNS]
        insert: Any = postgresql.insert
    else:
        values = [bindparam(name, type_=table.c[name].type) for name in _COLUMNS]
        insert = sqlite.insert
    conversation_id = values[_COLUMNS.index("conversation_id")]
    reopened = exists().where(earlier.c.conversation_id == conversation_id)
    # SQLite reads `INSERT … SELECT … ON CONFLICT` only when the SELECT has a WHERE.
    source = select(*values, reopened).where(true())
    return (
        insert(table)
        .from_select([*_COLUMNS, "reopened"], source)
        .on_conflict_do_nothing(
            index_elements=[table.c.conversation_id], index_where=text("resolved_at IS NULL")
        )
    )


_OPENING = {dialect: _opening_statement(dialect) for dialect in ("postgresql", "sqlite")}


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
    had it, where it stands, and whether it completed or handed off. Inside a channel batch
    (`defer_bot_notes`), written with the batch's last statement instead of on its own."""
    if session.bot_id is None:
        return
    parameters = {
        "ws": session.workspace_id,
        "conversation": session.conversation_id,
        "bot_id": session.bot_id,
        "version_id": session.version_id,
        "node_id": session.node_id,
        "outcome": BOT_OUTCOMES.get(session.status),  # None: the cycle keeps the one it has
        "now": utcnow(),
    }
    deferred = db.info.get(_DEFERRED_NOTES)
    if deferred is None:
        await core.run(db, _NOTE, parameters)
    else:  # a conversation's last note of the batch is its run's state: it wins
        deferred[session.conversation_id] = parameters


def defer_bot_notes(db: AsyncSession) -> None:
    """The bot notes of this transaction wait for `deferred_bot_notes` from now on (the
    channel batch sends them with its last writes: one round trip fewer per bot step). The
    cycle they update exists already: a message opens it before its bot runs."""
    db.info[_DEFERRED_NOTES] = {}


def deferred_bot_notes(db: AsyncSession) -> list[core.Write]:
    """The notes deferred since `defer_bot_notes`, to run now; notes run at once again."""
    notes: dict[uuid.UUID, dict[str, Any]] = db.info.pop(_DEFERRED_NOTES, None) or {}
    return [(_NOTE, parameters) for parameters in notes.values()]


_DEFERRED_NOTES = "botplatform.deferred_bot_notes"


def _note_statement() -> Any:
    table = table_of(ConversationCycle)
    columns = table.c
    return (
        update(table)
        .where(
            columns.workspace_id == bindparam("ws", type_=columns.workspace_id.type),
            columns.conversation_id
            == bindparam("conversation", type_=columns.conversation_id.type),
            columns.resolved_at.is_(None),
        )
        .values(
            bot_id=bindparam("bot_id", type_=columns.bot_id.type),
            bot_version_id=bindparam("version_id", type_=columns.bot_version_id.type),
            bot_node_id=bindparam("node_id", type_=columns.bot_node_id.type),
            bot_outcome=func.coalesce(
                bindparam("outcome", type_=columns.bot_outcome.type), columns.bot_outcome
            ),
            updated_at=bindparam("now", type_=columns.updated_at.type),
        )
    )


_NOTE = _note_statement()


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
