from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.audit.service import diff
from botplatform.channel.schemas import ChannelOut, ChannelUpdate, WhatsAppChannelCreate
from botplatform.config import Settings
from botplatform.kit.crypto import mask
from botplatform.kit.errors import Conflict
from botplatform.kit.scoping import scoped
from botplatform.models import Channel
from botplatform.usage import service as usage

SECRET_FIELDS = ("access_token", "app_secret", "verify_token")
CONFIG_FIELDS = ("display_phone_number", "auto_reply")


def webhook_url(settings: Settings, channel: Channel) -> str:
    return f"{settings.app_url.rstrip('/')}/webhooks/{channel.provider}/{channel.id}"


def to_out(
    settings: Settings,
    channel: Channel,
    *,
    show_verify_token: bool,
    member_ids: list[uuid.UUID] | None = None,
) -> ChannelOut:
    config = channel.config or {}
    return ChannelOut(
        id=channel.id,
        provider=channel.provider,
        name=channel.name,
        status=channel.status,
        phone_number_id=config.get("phone_number_id"),
        business_account_id=config.get("business_account_id"),
        display_phone_number=config.get("display_phone_number"),
        send_rate_per_second=channel.send_rate_per_second,
        auto_reply=config.get("auto_reply"),
        webhook_url=webhook_url(settings, channel),
        verify_token=channel.verify_token if show_verify_token else mask(channel.verify_token),
        access_token_hint=mask(channel.access_token),
        app_secret_hint=mask(channel.app_secret),
        created_at=channel.created_at,
        member_ids=member_ids or [],
    )


async def _ensure_number_free(db: AsyncSession, workspace_id: uuid.UUID, phone_id: str) -> None:
    for channel in (await db.execute(scoped(Channel, workspace_id))).scalars():
        if channel.config.get("phone_number_id") == phone_id:
            raise Conflict("This phone number is already connected.", code="channel_exists")


async def create(db: AsyncSession, workspace_id: uuid.UUID, data: WhatsAppChannelCreate) -> Channel:
    await usage.ensure_room(db, workspace_id, "channels")
    await _ensure_number_free(db, workspace_id, data.phone_number_id)
    channel = Channel(
        workspace_id=workspace_id,
        provider=data.provider,
        name=data.name,
        status="active",
        config={
            "phone_number_id": data.phone_number_id,
            "business_account_id": data.business_account_id,
            "display_phone_number": data.display_phone_number,
            "auto_reply": data.auto_reply or None,
        },
        access_token=data.access_token,
        app_secret=data.app_secret,
        verify_token=data.verify_token or secrets.token_urlsafe(24),
        send_rate_per_second=data.send_rate_per_second,
    )
    db.add(channel)
    await db.flush()
    return channel


async def update(db: AsyncSession, channel: Channel, data: ChannelUpdate) -> dict[str, Any]:
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    before: dict[str, Any] = {}
    for field, value in changes.items():
        if field in CONFIG_FIELDS:
            before[field] = channel.config.get(field)
            channel.config = {**channel.config, field: value or None}
        else:
            before[field] = getattr(channel, field)
            setattr(channel, field, value)
    await db.flush()
    return diff(before, changes)
