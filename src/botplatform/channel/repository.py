from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import ChannelReader, allow_channel_lookup, scoped, visible
from botplatform.models import Channel, ChannelMember, InboundEvent, Message


def channel_not_found() -> NotFound:
    return NotFound("Channel not found.", code="channel_not_found")


def list_statement(reader: ChannelReader) -> Select[Any]:
    """The channels this reader sees (an agent: the ones it is assigned to)."""
    return visible(Channel, reader)


async def get(db: AsyncSession, workspace_id: uuid.UUID, channel_id: uuid.UUID) -> Channel:
    """Any channel of the workspace, for the platform's own work and channel managers."""
    found = (
        await db.execute(scoped(Channel, workspace_id).where(Channel.id == channel_id))
    ).scalar_one_or_none()
    if found is None:
        raise channel_not_found()
    return found


async def get_visible(db: AsyncSession, reader: ChannelReader, channel_id: uuid.UUID) -> Channel:
    """The channel if this reader sees it; 404 otherwise (an agent is not told that a
    channel it is not assigned to exists)."""
    found = (
        await db.execute(visible(Channel, reader).where(Channel.id == channel_id))
    ).scalar_one_or_none()
    if found is None:
        raise channel_not_found()
    return found


async def members_by_channel(
    db: AsyncSession, workspace_id: uuid.UUID, channel_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The members assigned to each of these channels (oldest assignment first)."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {channel_id: [] for channel_id in channel_ids}
    if not channel_ids:
        return found
    statement = (
        scoped(ChannelMember, workspace_id)
        .where(ChannelMember.channel_id.in_(channel_ids))
        .order_by(ChannelMember.created_at, ChannelMember.user_id)
        .with_only_columns(ChannelMember.channel_id, ChannelMember.user_id)
    )
    for channel_id, user_id in (await db.execute(statement)).all():
        found[channel_id].append(user_id)
    return found


async def get_for_webhook(db: AsyncSession, channel_id: uuid.UUID) -> Channel | None:
    """The channel a provider webhook names, before any workspace is known: its id in the
    URL is the only key (row-level security admits exactly that row)."""
    await allow_channel_lookup(db, channel_id)
    return (await db.execute(select(Channel).where(Channel.id == channel_id))).scalar_one_or_none()


async def activity(
    db: AsyncSession, workspace_id: uuid.UUID, channel_id: uuid.UUID, since: datetime
) -> tuple[datetime | None, dict[str, int]]:
    """For the channel's health: when its last webhook arrived, and its outbound messages
    since `since` counted by status (notes excluded)."""
    last_event = (
        await db.execute(
            scoped(InboundEvent, workspace_id)
            .where(InboundEvent.channel_id == channel_id)
            .with_only_columns(func.max(InboundEvent.created_at))
        )
    ).scalar_one_or_none()
    statuses = (
        scoped(Message, workspace_id)
        .where(
            Message.channel_id == channel_id,
            Message.direction == "outbound",
            Message.is_note.is_(False),
            Message.created_at >= since,
        )
        .with_only_columns(Message.status, func.count())
        .group_by(Message.status)
    )
    counts = {str(status): int(count) for status, count in (await db.execute(statuses)).all()}
    return last_event, counts
