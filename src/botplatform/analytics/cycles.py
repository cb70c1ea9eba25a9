"""Writes the conversation cycles as conversations move: a customer's message opens one (or
reopens the conversation after a resolve), a resolve closes it, the bot's run marks it.
Called by the conversation, channel batch and bot code in the transaction of the move."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
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
    deferred = db.info.get(_DEFERRED)
    if deferred is not None:  # inside a channel batch: with its last writes
        deferred.openings += [(workspace_id, opening) for opening in openings]
        return
    write = opening_cycles(db, workspace_id, openings)
    if write is not None:
        await core.run(db, *write)


def opening_cycles(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    openings: list[Opening],
    notes: dict[uuid.UUID, dict[str, Any]] | None = None,
) -> core.Write | None:
    """`open_cycles` as one statement to run later (the channel batch sends it with its last
    writes, `core.together`): a conversation with an open cycle is left out by the partial
    unique key, and whether it had one before is asked in the statement itself, so nothing
    is read first. `notes`: bot notes (`note_bot`) of the same moment, by conversation: a
    cycle opened now carries its bot's note from the start."""
    if not openings:
        return None
    now = utcnow()
    rows = [_row(workspace_id, o, (notes or {}).get(o.conversation_id), now=now) for o in openings]
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        return _OPENING[dialect], {name: [row[name] for row in rows] for name in _COLUMNS}
    return _OPENING[dialect], rows


def _row(
    workspace_id: uuid.UUID, o: Opening, note: dict[str, Any] | None, *, now: datetime
) -> dict[str, Any]:
    note = note or {}
    return {
        "id": uuid.uuid4(),
        "workspace_id": workspace_id,
        "conversation_id": o.conversation_id,
        "channel_id": o.channel_id,
        "opened_at": o.at,
        "created_at": now,
        "updated_at": now,
        "bot_id": note.get("bot_id"),
        "bot_version_id": note.get("version_id"),
        "bot_node_id": note.get("node_id"),
        "bot_outcome": note.get("outcome"),
    }


_COLUMNS: tuple[str, ...] = ("id", "workspace_id", "conversation_id", "channel_id", "opened_at")
_COLUMNS += ("created_at", "updated_at", "bot_id", "bot_version_id", "bot_node_id", "bot_outcome")


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
    (`defer_writes`), written with the batch's last statement instead of on its own."""
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
    deferred = db.info.get(_DEFERRED)
    if deferred is None:
        await core.run(db, _NOTE, parameters)
    else:  # a conversation's last note of the batch is its run's state: it wins
        deferred.notes[session.conversation_id] = parameters


@dataclass
class _Deferred:
    openings: list[tuple[uuid.UUID, Opening]] = field(default_factory=list)
    notes: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)


def defer_writes(db: AsyncSession) -> None:
    """From now on, this transaction's cycle openings and bot notes wait for
    `deferred_writes` (the channel batch sends them with its last writes: two round trips
    fewer per message a bot answers). Nothing in between reads the cycles."""
    db.info[_DEFERRED] = _Deferred()


def deferred_writes(db: AsyncSession) -> list[core.Write]:
    """The writes deferred since `defer_writes`, to run now (after it they run at once
    again). They run as one statement's parts, on one snapshot: a cycle opened by them takes
    its conversation's note in its row, and the note's UPDATE, which cannot see that row,
    updates a cycle that was open before."""
    deferred: _Deferred | None = db.info.pop(_DEFERRED, None)
    if deferred is None:
        return []
    by_workspace: dict[uuid.UUID, list[Opening]] = {}
    for workspace_id, opening in deferred.openings:
        by_workspace.setdefault(workspace_id, []).append(opening)
    writes = [
        write
        for workspace_id, openings in by_workspace.items()
        if (write := opening_cycles(db, workspace_id, openings, deferred.notes)) is not None
    ]
    return writes + _noting(db, list(deferred.notes.values()))


def _noting(db: AsyncSession, notes: list[dict[str, Any]]) -> list[core.Write]:
    """The bot notes (`note_bot`'s parameters) as writes: on PostgreSQL one statement per
    workspace from arrays, so a batch's last statement keeps one prepared shape whatever
    the number of conversations its bots moved (one part per note gave a new statement to
    prepare for every count); on SQLite one per note."""
    if db.get_bind().dialect.name != "postgresql":
        return [(_NOTE, parameters) for parameters in notes]
    by_workspace: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for note in notes:
        by_workspace.setdefault(note["ws"], []).append(note)
    return [
        (
            _NOTES,
            {
                "ws": workspace_id,
                "now": max(note["now"] for note in group),
                **{f"in_{name}": [note[name] for note in group] for name in _NOTED},
            },
        )
        for workspace_id, group in by_workspace.items()
    ]


_DEFERRED = "botplatform.deferred_cycle_writes"


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

#: What a note gives, by `note_bot`'s parameter names, for `_NOTES`.
_NOTED = ("conversation", "bot_id", "version_id", "node_id", "outcome")


def _notes_statement() -> Any:
    """`_NOTE` for many conversations of a workspace at once (PostgreSQL): from arrays,
    named `in_<note>` (a parameter may not take the name of a column the UPDATE sets)."""
    table = table_of(ConversationCycle)
    columns = table.c
    kinds = (
        *(columns.conversation_id, columns.bot_id, columns.bot_version_id),
        *(columns.bot_node_id, columns.bot_outcome),
    )
    given = core.unnested(
        "given", *((f"in_{name}", c.type) for name, c in zip(_NOTED, kinds, strict=True))
    ).c
    return (
        update(table)
        .where(
            columns.workspace_id == bindparam("ws", type_=columns.workspace_id.type),
            columns.conversation_id == given.in_conversation,
            columns.resolved_at.is_(None),
        )
        .values(
            bot_id=given.in_bot_id,
            bot_version_id=given.in_version_id,
            bot_node_id=given.in_node_id,
            bot_outcome=func.coalesce(given.in_outcome, columns.bot_outcome),
            updated_at=bindparam("now", type_=columns.updated_at.type),
        )
    )


_NOTES = _notes_statement()


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
