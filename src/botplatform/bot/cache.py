"""The live bots of a workspace, kept in process (`kit.shared_cache`): the enabled bots with a
published version, that version's flow loaded once. An inbound message on a channel no bot
serves costs no query and takes no lock.

    live = await bot_cache.live_for_channel(db, workspace_id, channel_id)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.bot.flow import Flow
from botplatform.kit import shared_cache
from botplatform.kit.scoping import scoped
from botplatform.models import Bot, BotVersion

KIND = "live_bots"


@dataclass(frozen=True)
class LiveBot:
    """A published, enabled bot. `flow` is shared by every message of the process: the
    engine reads it and never changes it."""

    bot_id: uuid.UUID
    version_id: uuid.UUID
    #: The channels it serves (ids as text); empty: every channel of the workspace.
    channel_ids: frozenset[str]
    flow: Flow

    def serves(self, channel_id: uuid.UUID) -> bool:
        return not self.channel_ids or str(channel_id) in self.channel_ids


async def live_bots(db: AsyncSession, workspace_id: uuid.UUID) -> tuple[LiveBot, ...]:
    """Enabled, published bots of the workspace, oldest first (the triggers' tie-break)."""

    async def load() -> tuple[LiveBot, ...]:
        statement = (
            scoped(Bot, workspace_id)
            .where(Bot.enabled.is_(True))
            .join(
                BotVersion,
                and_(
                    BotVersion.id == Bot.published_version_id,
                    BotVersion.workspace_id == Bot.workspace_id,
                ),
            )
            .with_only_columns(Bot.id, BotVersion.id, Bot.channel_ids, BotVersion.flow)
            .order_by(Bot.created_at, Bot.id)
        )
        return tuple(
            LiveBot(bot_id, version_id, frozenset(channel_ids or ()), Flow.load(flow))
            for bot_id, version_id, channel_ids, flow in (await db.execute(statement)).all()
        )

    return await shared_cache.cached(db, KIND, workspace_id, None, load)


async def live_for_channel(
    db: AsyncSession, workspace_id: uuid.UUID, channel_id: uuid.UUID
) -> tuple[LiveBot, ...]:
    """The live bots that serve this channel, oldest first; empty when none can act."""
    return tuple(bot for bot in await live_bots(db, workspace_id) if bot.serves(channel_id))


def _workspace(row: Bot | BotVersion) -> tuple[uuid.UUID, None]:
    return row.workspace_id, None


# What makes a bot live or not, and which channels it serves. A version's flow never
# changes (versions are immutable); a deleted one takes its bot's publication with it.
shared_cache.watch(Bot, KIND, _workspace, ("enabled", "published_version_id", "channel_ids"))
shared_cache.watch(BotVersion, KIND, _workspace, ("flow",))
