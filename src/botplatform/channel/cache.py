"""A channel as the message path uses it, kept in process (`kit.shared_cache`): its settings
and decrypted credentials in a frozen view, read once per process and change instead of once
(with a Fernet decryption per secret) per message.

    channel = await channel_cache.get(db, workspace_id, channel_id)  # ChannelView | None
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit import shared_cache
from botplatform.kit.scoping import scoped
from botplatform.models import Channel

KIND = "channel"


@dataclass(frozen=True)
class ChannelView:
    """A channel's row as it was committed, detached from any session (a `ChannelInfo`);
    hashable, so a batch can group its items by channel."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    provider: str
    name: str
    status: str
    config: Mapping[str, Any] = field(hash=False)  # a mapping is not hashable
    access_token: str | None
    app_secret: str | None
    verify_token: str | None
    send_rate_per_second: int


_COLUMNS = (
    Channel.id,
    Channel.workspace_id,
    Channel.provider,
    Channel.name,
    Channel.status,
    Channel.config,
    Channel.access_token,
    Channel.app_secret,
    Channel.verify_token,
    Channel.send_rate_per_second,
)


async def get(
    db: AsyncSession, workspace_id: uuid.UUID, channel_id: uuid.UUID
) -> ChannelView | None:
    """The channel of this workspace with this id (any status), or None."""

    async def load() -> ChannelView | None:
        statement = scoped(Channel, workspace_id).where(Channel.id == channel_id)
        row = (await db.execute(statement.with_only_columns(*_COLUMNS))).one_or_none()
        if row is None:
            return None
        values = row._asdict()
        values["config"] = MappingProxyType(dict(values["config"] or {}))
        return ChannelView(**values)

    return await shared_cache.cached(db, KIND, workspace_id, str(channel_id), load)


shared_cache.watch(Channel, KIND, lambda row: (row.workspace_id, str(row.id)))
