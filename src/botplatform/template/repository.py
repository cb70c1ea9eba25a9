from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import ChannelReader, scoped, visible
from botplatform.models import MessageTemplate


def template_not_found() -> NotFound:
    return NotFound("Template not found.", code="template_not_found")


def list_statement(
    reader: ChannelReader, channel_id: uuid.UUID | None = None, status: str | None = None
) -> Select[Any]:
    """The templates this reader sees (an agent: those of its channels), optionally of one
    channel or one status."""
    statement = visible(MessageTemplate, reader)
    if channel_id is not None:
        statement = statement.where(MessageTemplate.channel_id == channel_id)
    if status is not None:
        statement = statement.where(MessageTemplate.status == status)
    return statement


async def get_visible(
    db: AsyncSession, reader: ChannelReader, template_id: uuid.UUID
) -> MessageTemplate:
    found = (
        await db.execute(visible(MessageTemplate, reader).where(MessageTemplate.id == template_id))
    ).scalar_one_or_none()
    if found is None:
        raise template_not_found()
    return found


async def of_channel(
    db: AsyncSession, workspace_id: uuid.UUID, channel_id: uuid.UUID
) -> list[MessageTemplate]:
    statement = scoped(MessageTemplate, workspace_id).where(
        MessageTemplate.channel_id == channel_id
    )
    return list((await db.execute(statement)).scalars())


async def find(
    db: AsyncSession, workspace_id: uuid.UUID, channel_id: uuid.UUID, name: str, language: str
) -> MessageTemplate | None:
    statement = scoped(MessageTemplate, workspace_id).where(
        MessageTemplate.channel_id == channel_id,
        MessageTemplate.name == name,
        MessageTemplate.language == language,
    )
    return (await db.execute(statement)).scalar_one_or_none()


async def for_webhook(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    channel_id: uuid.UUID,
    provider_id: str | None,
    name: str | None,
    language: str | None,
) -> list[MessageTemplate]:
    """The rows a template webhook is about: by Meta's template id in the whole workspace
    (channels sharing a business account hold a copy each), else by name and language on
    the channel the webhook came to."""
    if provider_id:
        statement = scoped(MessageTemplate, workspace_id).where(
            MessageTemplate.provider_template_id == provider_id
        )
        rows = list((await db.execute(statement)).scalars())
        if rows:
            return rows
    if name and language:
        row = await find(db, workspace_id, channel_id, name, language)
        return [row] if row is not None else []
    return []
