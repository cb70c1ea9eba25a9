"""Usage counters and counted resources. Counters change only through one upsert statement
each (INSERT … ON CONFLICT DO UPDATE, on both databases), so concurrent increments add up and
a conditional one cannot overshoot its quota."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.invitation.repository import list_statement as invitations_statement
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import scoped
from botplatform.models import Bot, Channel, Invitation, Membership, UsageCounter, Workspace

COUNTERS = (
    "messages_inbound",
    "messages_outbound",
    "ai_tokens",
    "broadcasts",
    "broadcast_recipients",
)


def period_of(moment: datetime) -> str:
    """The calendar month (UTC) a moment counts in: "YYYY-MM"."""
    return f"{moment.year:04d}-{moment.month:02d}"


def _upsert(db: AsyncSession, workspace_id: uuid.UUID, amounts: dict[str, int]) -> Any:
    dialect = db.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(UsageCounter).values(
        workspace_id=workspace_id, period=period_of(utcnow()), updated_at=utcnow(), **amounts
    )
    return statement, {
        **{name: getattr(UsageCounter, name) + value for name, value in amounts.items()},
        "updated_at": statement.excluded.updated_at,
    }


async def add(db: AsyncSession, workspace_id: uuid.UUID, **amounts: int) -> None:
    """Adds to this month's counters, unconditionally (what was used, was used)."""
    statement, increments = _upsert(db, workspace_id, amounts)
    await db.execute(
        statement.on_conflict_do_update(index_elements=["workspace_id", "period"], set_=increments)
    )


def _messages_upsert(insert: Any) -> Any:
    # Every column given (no Python-side default to compute): what `core.together` needs to
    # send this upsert in the same round trip as the batch's other last writes.
    statement = insert(UsageCounter).values(
        id=bindparam("id"),
        ai_tokens=0,
        broadcasts=0,
        broadcast_recipients=0,
        workspace_id=bindparam("ws"),
        period=bindparam("month"),
        updated_at=bindparam("now"),
        messages_inbound=bindparam("inbound"),
        messages_outbound=bindparam("outbound"),
    )
    return statement.on_conflict_do_update(
        index_elements=["workspace_id", "period"],
        set_={
            "messages_inbound": UsageCounter.messages_inbound + statement.excluded.messages_inbound,
            "messages_outbound": UsageCounter.messages_outbound
            + statement.excluded.messages_outbound,
            "updated_at": statement.excluded.updated_at,
        },
    )


# Built once per process: the message path adds to these counters on every batch.
_ADD_MESSAGES = {
    "postgresql": _messages_upsert(postgresql_insert),
    "sqlite": _messages_upsert(sqlite_insert),
}


async def add_messages(
    db: AsyncSession, workspace_id: uuid.UUID, *, inbound: int, outbound: int
) -> None:
    """`add` for the two message counters at once, unconditionally."""
    await core.run(db, *adding_messages(db, workspace_id, inbound=inbound, outbound=outbound))


def adding_messages(
    db: AsyncSession, workspace_id: uuid.UUID, *, inbound: int, outbound: int
) -> core.Write:
    """`add_messages` as a statement to run later (`core.together`)."""
    now = utcnow()
    parameters = {
        "id": uuid.uuid4(),
        "ws": workspace_id,
        "month": period_of(now),
        "now": now,
        "inbound": inbound,
        "outbound": outbound,
    }
    return _ADD_MESSAGES[db.get_bind().dialect.name], parameters


async def add_within(
    db: AsyncSession, workspace_id: uuid.UUID, counter: str, amount: int, limit: int, used: Any
) -> bool:
    """Adds `amount` to `counter` only while `used` (an expression over the row) stays within
    `limit` afterwards; False, and nothing added, when it would not. The row's lock makes the
    check and the increment one step under concurrency."""
    if amount > limit:
        return False
    statement, increments = _upsert(db, workspace_id, {counter: amount})
    result = await db.execute(
        statement.on_conflict_do_update(
            index_elements=["workspace_id", "period"],
            set_=increments,
            where=used + amount <= limit,
        ).returning(UsageCounter.id)
    )
    return result.first() is not None


async def add_all_within(
    db: AsyncSession, workspace_id: uuid.UUID, amounts: dict[str, int], limits: dict[str, int]
) -> bool:
    """`add_within` for several counters at once: all of `amounts` added only while every
    counter named in `limits` stays within its limit afterwards; else nothing (one
    statement, so two concurrent reservations cannot both take the last room)."""
    if any(amounts[name] > limit for name, limit in limits.items()):
        return False  # a first row of the month is inserted unchecked: refuse it here
    statement, increments = _upsert(db, workspace_id, amounts)
    within = [
        getattr(UsageCounter, name) + amounts[name] <= limit for name, limit in limits.items()
    ]
    result = await db.execute(
        statement.on_conflict_do_update(
            index_elements=["workspace_id", "period"],
            set_=increments,
            where=and_(*within) if within else None,
        ).returning(UsageCounter.id)
    )
    return result.first() is not None


async def current(db: AsyncSession, workspace_id: uuid.UUID) -> UsageCounter | None:
    statement = scoped(UsageCounter, workspace_id).where(UsageCounter.period == period_of(utcnow()))
    return (
        await db.execute(statement.execution_options(populate_existing=True))
    ).scalar_one_or_none()


async def lock_workspace(db: AsyncSession, workspace_id: uuid.UUID) -> None:
    """Serialises "count, then create" per workspace on PostgreSQL (SQLite has one writer),
    so two concurrent creations cannot both take the last free place."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(select(Workspace.id).where(Workspace.id == workspace_id).with_for_update())


async def _count(db: AsyncSession, statement: Any) -> int:
    return int(
        (await db.execute(select(func.count()).select_from(statement.subquery()))).scalar_one()
    )


async def count_channels(db: AsyncSession, workspace_id: uuid.UUID) -> int:
    return await _count(db, scoped(Channel, workspace_id))


async def count_bots(db: AsyncSession, workspace_id: uuid.UUID) -> int:
    return await _count(db, scoped(Bot, workspace_id))


async def count_members(db: AsyncSession, workspace_id: uuid.UUID) -> int:
    return await _count(db, scoped(Membership, workspace_id))


async def count_pending_invitations(
    db: AsyncSession, workspace_id: uuid.UUID, except_email: str | None = None
) -> int:
    statement = invitations_statement(workspace_id, "pending")
    if except_email is not None:
        statement = statement.where(func.lower(Invitation.email) != except_email.lower())
    return await _count(db, statement)
