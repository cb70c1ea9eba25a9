"""Bots: create, edit (every saved flow is validated), publish immutable versions. Flushes,
never commits."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.bot import repository
from botplatform.bot.flow import validate
from botplatform.bot.schemas import BotCreate, BotOut, BotUpdate, VersionOut
from botplatform.channel import repository as channels
from botplatform.kit.errors import Unprocessable
from botplatform.models import Bot, BotVersion
from botplatform.usage import service as usage


def check_flow(flow: dict[str, Any]) -> None:
    issues = validate(flow)
    if issues:
        raise Unprocessable(
            f"The flow has {len(issues)} problem(s): {issues[0].message}"
            + (" (and more)" if len(issues) > 1 else ""),
            code="flow_invalid",
            details=[issue.as_dict() for issue in issues],
        )


async def _channel_ids(
    db: AsyncSession, workspace_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[str]:
    for channel_id in ids:
        await channels.get(db, workspace_id, channel_id)  # 404 unless this workspace's
    return sorted({str(channel_id) for channel_id in ids})


async def create(db: AsyncSession, workspace_id: uuid.UUID, body: BotCreate) -> Bot:
    check_flow(body.flow)
    await usage.ensure_room(db, workspace_id, "bots")
    bot = Bot(
        workspace_id=workspace_id,
        name=body.name,
        description=body.description,
        enabled=body.enabled,
        channel_ids=await _channel_ids(db, workspace_id, body.channel_ids),
        handoff_idle_minutes=body.handoff_idle_minutes,
        flow=body.flow,
        draft_revision=1,
    )
    db.add(bot)
    await db.flush()
    return bot


async def update(db: AsyncSession, bot: Bot, body: BotUpdate) -> dict[str, Any]:
    """Applies the changes; what changed, for the audit entry."""
    changes: dict[str, Any] = {}
    for name in ("name", "description", "enabled"):
        value = getattr(body, name)
        if value is not None and value != getattr(bot, name):
            changes[name] = {"before": getattr(bot, name), "after": value}
            setattr(bot, name, value)
    if body.channel_ids is not None:
        ids = await _channel_ids(db, bot.workspace_id, body.channel_ids)
        if ids != bot.channel_ids:
            changes["channel_ids"] = {"before": bot.channel_ids, "after": ids}
            bot.channel_ids = ids
    idle = None if body.default_handoff_idle else body.handoff_idle_minutes
    if (body.default_handoff_idle or idle is not None) and idle != bot.handoff_idle_minutes:
        changes["handoff_idle_minutes"] = {"before": bot.handoff_idle_minutes, "after": idle}
        bot.handoff_idle_minutes = idle
    if body.flow is not None and body.flow != bot.flow:
        check_flow(body.flow)
        bot.flow = body.flow
        bot.draft_revision += 1
        changes["draft_revision"] = {"before": bot.draft_revision - 1, "after": bot.draft_revision}
    await db.flush()
    return changes


async def publish(db: AsyncSession, bot: Bot, note: str, user_id: uuid.UUID | None) -> BotVersion:
    """Freezes the current flow as the next version and makes it the one new conversations
    start on; conversations already running stay on theirs."""
    check_flow(bot.flow)
    if not bot.flow.get("triggers"):
        raise Unprocessable(
            "A flow without triggers would never start: add one before publishing.",
            code="flow_without_triggers",
        )
    number = await repository.last_number(db, bot.workspace_id, bot.id) + 1
    version = BotVersion(
        workspace_id=bot.workspace_id,
        bot_id=bot.id,
        number=number,
        flow=copy.deepcopy(bot.flow),
        draft_revision=bot.draft_revision,
        note=note,
        published_by_id=user_id,
    )
    db.add(version)
    await db.flush()
    bot.published_version_id = version.id
    await db.flush()
    return version


async def to_out(db: AsyncSession, bot: Bot) -> BotOut:
    out = BotOut.model_validate(bot, from_attributes=True)
    if bot.published_version_id is not None:
        version = await repository.find_version(db, bot.workspace_id, bot.published_version_id)
        out.published_version = version.number if version else None
    return out


def version_out(version: BotVersion, bot: Bot) -> VersionOut:
    out = VersionOut.model_validate(version, from_attributes=True)
    out.is_live = bot.published_version_id == version.id
    return out
