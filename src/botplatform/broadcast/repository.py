"""Every query of the broadcast domain; reads start from the one scoping helper."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, distinct, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import Broadcast, BroadcastRecipient, Contact, ContactIdentity
from botplatform.models.base import table_of

R = BroadcastRecipient
_RECIPIENTS = table_of(BroadcastRecipient)
_INSERT = {
    "postgresql": postgresql_insert(_RECIPIENTS).on_conflict_do_nothing(
        index_elements=["broadcast_id", "contact_id"]
    ),
    "sqlite": sqlite_insert(_RECIPIENTS).on_conflict_do_nothing(
        index_elements=["broadcast_id", "contact_id"]
    ),
}


async def get(db: AsyncSession, workspace_id: uuid.UUID, broadcast_id: uuid.UUID) -> Broadcast:
    found = (
        await db.execute(scoped(Broadcast, workspace_id).where(Broadcast.id == broadcast_id))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("No such broadcast in this workspace.", code="broadcast_not_found")
    return found


async def lock(db: AsyncSession, workspace_id: uuid.UUID, broadcast_id: uuid.UUID) -> Broadcast:
    """The row, locked for a state change (PostgreSQL; SQLite's writer lock serialises)."""
    statement = (
        scoped(Broadcast, workspace_id)
        .where(Broadcast.id == broadcast_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise NotFound("No such broadcast in this workspace.", code="broadcast_not_found")
    return found


def listing(workspace_id: uuid.UUID, status: str | None) -> Select[Any]:
    statement = scoped(Broadcast, workspace_id)
    return statement.where(Broadcast.status == status) if status else statement


async def counts(
    db: AsyncSession, workspace_id: uuid.UUID, broadcast_id: uuid.UUID
) -> list[tuple[str, str | None, int]]:
    """(status, error code, rows) of the broadcast's recipients: progress from the rows."""
    statement = (
        select(R.status, R.error_code, func.count())
        .where(R.workspace_id == workspace_id, R.broadcast_id == broadcast_id)
        .group_by(R.status, R.error_code)
    )
    return [(s, c, int(n)) for s, c, n in (await db.execute(statement)).all()]


def recipients(
    workspace_id: uuid.UUID,
    broadcast_id: uuid.UUID,
    status: str | None,
    error_code: str | None,
) -> Select[Any]:
    statement = scoped(BroadcastRecipient, workspace_id).where(R.broadcast_id == broadcast_id)
    if status:
        statement = statement.where(R.status == status)
    if error_code:
        statement = statement.where(R.error_code == error_code)
    return statement


async def contacts_with_address(
    db: AsyncSession, workspace_id: uuid.UUID, provider: str, contact_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[bool, str | None]]:
    """For each existing contact: (opted out, its id on `provider` or None)."""
    statement = (
        select(Contact.id, Contact.opted_out, ContactIdentity.external_id)
        .outerjoin(
            ContactIdentity,
            (ContactIdentity.contact_id == Contact.id) & (ContactIdentity.provider == provider),
        )
        .where(Contact.workspace_id == workspace_id, Contact.id.in_(list(contact_ids)))
    )
    found: dict[uuid.UUID, tuple[bool, str | None]] = {}
    for contact_id, opted_out, external_id in (await db.execute(statement)).all():
        if contact_id not in found or external_id:
            found[contact_id] = (bool(opted_out), external_id)
    return found


async def insert_recipients(db: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection = await db.connection()
        await connection.execute(_INSERT[connection.dialect.name], rows)


async def reached_in_window(
    db: AsyncSession, workspace_id: uuid.UUID, channel_id: uuid.UUID, now: datetime
) -> int:
    """Unique contacts this channel's broadcasts reached in the last 24 hours (the tier)."""
    statement = select(func.count(distinct(R.contact_id))).where(
        R.workspace_id == workspace_id,
        R.channel_id == channel_id,
        R.sent_at >= now - timedelta(hours=24),
    )
    return int((await db.execute(statement)).scalar_one())


async def oldest_in_window(
    db: AsyncSession, workspace_id: uuid.UUID, channel_id: uuid.UUID, now: datetime
) -> datetime | None:
    statement = select(func.min(R.sent_at)).where(
        R.workspace_id == workspace_id,
        R.channel_id == channel_id,
        R.sent_at >= now - timedelta(hours=24),
    )
    oldest: datetime | None = (await db.execute(statement)).scalar_one()
    return oldest


async def release_abandoned(
    db: AsyncSession, workspace_id: uuid.UUID, broadcast_id: uuid.UUID, now: datetime
) -> None:
    """Claimed rows whose lease ran out before a message was written for them provably
    never left: queued again."""
    await db.execute(
        update(BroadcastRecipient)
        .where(
            R.workspace_id == workspace_id,
            R.broadcast_id == broadcast_id,
            R.status == "sending",
            R.message_id.is_(None),
            R.lease_until < now,
        )
        .values(status="queued", lease_until=None)
    )


async def claim(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    broadcast_id: uuid.UUID,
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> list[tuple[uuid.UUID, uuid.UUID, str | None]]:
    """Leases up to `limit` queued recipients due now: (id, contact id, address)."""
    candidates = (
        select(R.id)
        .where(
            R.workspace_id == workspace_id,
            R.broadcast_id == broadcast_id,
            R.status == "queued",
            or_(R.not_before.is_(None), R.not_before <= now),
        )
        .order_by(R.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await db.execute(candidates)).scalars().all())
    if not ids:
        return []
    result = await db.execute(
        update(BroadcastRecipient)
        .where(R.workspace_id == workspace_id, R.id.in_(ids), R.status == "queued")
        .values(status="sending", lease_until=lease_until)
        .returning(R.id, R.contact_id, R.address)
        .execution_options(synchronize_session=False)
    )
    return [(row[0], row[1], row[2]) for row in result.all()]


async def pending(
    db: AsyncSession, workspace_id: uuid.UUID, broadcast_id: uuid.UUID
) -> tuple[int, datetime | None]:
    """Recipients still to be sent (queued, or claimed without a message yet), and the
    earliest `not_before` among the queued ones."""
    statement = select(func.count(), func.min(R.not_before)).where(
        R.workspace_id == workspace_id,
        R.broadcast_id == broadcast_id,
        or_(R.status == "queued", (R.status == "sending") & R.message_id.is_(None)),
    )
    left, earliest = (await db.execute(statement)).one()
    return int(left), earliest


async def hold_for_send(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    recipient_ids: list[uuid.UUID],
    claim_lease: datetime,
) -> dict[uuid.UUID, int]:
    """The mark's fence: of these recipients, those still claimed under `claim_lease` and
    without a message, their attempts counted up; {id: attempts}."""
    held = await db.execute(
        update(BroadcastRecipient)
        .where(
            R.workspace_id == workspace_id,
            R.id.in_(recipient_ids),
            R.status == "sending",
            R.lease_until == claim_lease,
            R.message_id.is_(None),
        )
        .values(attempts=R.attempts + 1)
        .returning(R.id, R.attempts)
        .execution_options(synchronize_session=False)
    )
    return {row[0]: row[1] for row in held.all()}
