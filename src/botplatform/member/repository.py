from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.permissions import Role
from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import Channel, ChannelMember, Membership, User


def member_not_found() -> NotFound:
    return NotFound("Member not found.", code="member_not_found")


def members_with_users(workspace_id: uuid.UUID) -> Select[Any]:
    return (
        scoped(Membership, workspace_id).join(User, User.id == Membership.user_id).add_columns(User)
    )


async def get(
    db: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Membership, User]:
    statement = members_with_users(workspace_id).where(Membership.user_id == user_id)
    row = (await db.execute(statement)).first()
    if row is None:
        raise member_not_found()
    return row[0], row[1]


async def count_owners(db: AsyncSession, workspace_id: uuid.UUID) -> int:
    """Counts the owners, locking their rows on PostgreSQL so that two concurrent demotions
    cannot both see "another owner is left" (SQLite serialises writers anyway)."""
    owners = scoped(Membership, workspace_id).where(Membership.role == Role.OWNER)
    locked = owners.with_for_update()
    ids = (await db.execute(locked.with_only_columns(Membership.id))).scalars().all()
    return len(ids)


async def is_member_email(db: AsyncSession, workspace_id: uuid.UUID, email: str) -> bool:
    statement = members_with_users(workspace_id).where(User.email == email.lower())
    return (await db.execute(statement.limit(1))).first() is not None


async def assigned_channel_ids(
    db: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> frozenset[uuid.UUID]:
    statement = scoped(ChannelMember, workspace_id).where(ChannelMember.user_id == user_id)
    rows = await db.execute(statement.with_only_columns(ChannelMember.channel_id))
    return frozenset(rows.scalars())


async def channels_by_user(
    db: AsyncSession, workspace_id: uuid.UUID, user_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Each user's assigned channels (oldest assignment first), for a page of members."""
    wanted = list(user_ids)
    found: dict[uuid.UUID, list[uuid.UUID]] = {user_id: [] for user_id in wanted}
    if not wanted:
        return found
    statement = (
        scoped(ChannelMember, workspace_id)
        .where(ChannelMember.user_id.in_(wanted))
        .order_by(ChannelMember.created_at, ChannelMember.channel_id)
        .with_only_columns(ChannelMember.user_id, ChannelMember.channel_id)
    )
    for user_id, channel_id in (await db.execute(statement)).all():
        found[user_id].append(channel_id)
    return found


async def existing_channel_ids(
    db: AsyncSession, workspace_id: uuid.UUID, channel_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    statement = scoped(Channel, workspace_id).where(Channel.id.in_(list(channel_ids)))
    return set((await db.execute(statement.with_only_columns(Channel.id))).scalars())


async def assignments(
    db: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> list[ChannelMember]:
    statement = scoped(ChannelMember, workspace_id).where(ChannelMember.user_id == user_id)
    return list((await db.execute(statement)).scalars())
