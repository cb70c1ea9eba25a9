from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, UploadFile, status
from pydantic import BaseModel, Field

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import ChannelsManage, ChannelsRead, ConversationsReply
from botplatform.authz.permissions import Permission
from botplatform.channel import repository, service
from botplatform.channel.schemas import (
    ChannelCreate,
    ChannelOut,
    ChannelUpdate,
    SandboxChannelCreate,
    TelegramChannelCreate,
)
from botplatform.channels.base import CHANNEL_NOT_CONFIGURED, ProviderSendError
from botplatform.channels.registry import adapter_for
from botplatform.db import DbSession, after_commit
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import BadGateway, Unprocessable
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.media.storage import MAX_MEDIA_BYTES, MediaRejected, check_media
from botplatform.models import Channel
from botplatform.runtime import RuntimeDep

router = APIRouter(prefix="/workspaces/{ws}", tags=["channels"])


@router.get("/channels")
async def list_channels(
    access: ChannelsRead, db: DbSession, page: PageQuery, runtime: RuntimeDep
) -> Envelope[Page[ChannelOut]]:
    rows, next_cursor = await paginate(
        db, repository.list_statement(access), Channel.created_at, Channel.id, page
    )
    manage = access.can(Permission.CHANNELS_MANAGE)
    channels = [row[0] for row in rows]
    members = await repository.members_by_channel(db, access.workspace_id, [c.id for c in channels])
    items = [
        service.to_out(runtime.settings, c, show_verify_token=manage, member_ids=members[c.id])
        for c in channels
    ]
    return ok(Page(items=items, next_cursor=next_cursor))


@router.post("/channels", status_code=status.HTTP_201_CREATED)
async def create_channel(
    access: ChannelsManage,
    body: ChannelCreate,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[ChannelOut]:
    """Connects a channel: a WhatsApp Business number (`provider` omitted or `whatsapp`), a
    Facebook Page (`messenger`) or an Instagram professional account (`instagram`). The
    answer gives the webhook URL and verify token to paste into Meta's console; tokens and
    secrets are stored encrypted and never shown. A Telegram bot (`telegram`, its
    `bot_token`) is checked with getMe and its webhook registered here: nothing to paste
    (422 `invalid_bot_token` when Telegram refuses it). Providers not built yet answer 501
    `channel_not_available`."""
    if isinstance(body, TelegramChannelCreate):
        channel = await service.create_telegram(
            db, runtime.http, runtime.settings, access.workspace_id, body
        )
    else:
        channel = await service.create(db, access.workspace_id, body)
    await audit.log(
        "channel.create",
        workspace_id=access.workspace_id,
        target_type="channel",
        target_id=channel.id,
        changes={"provider": channel.provider, "name": channel.name},
    )
    return ok(service.to_out(runtime.settings, channel, show_verify_token=True), "Channel created")


@router.post("/channels/sandbox", status_code=status.HTTP_201_CREATED)
async def create_sandbox_channel(
    access: ChannelsManage,
    body: SandboxChannelCreate,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[ChannelOut]:
    """Creates a WhatsApp channel on the sandbox (`botplatform sandbox whatsapp`, where
    WHATSAPP_API_BASE_URL points): the platform picks the ids, tells the sandbox the channel's
    webhook URL and takes its credentials. 409 `sandbox_unavailable` when none answers."""
    channel = await service.create_sandbox(
        db, runtime.http, runtime.settings, access.workspace_id, body
    )
    await audit.log(
        "channel.create",
        workspace_id=access.workspace_id,
        target_type="channel",
        target_id=channel.id,
        changes={"provider": channel.provider, "name": channel.name, "sandbox": True},
    )
    return ok(service.to_out(runtime.settings, channel, show_verify_token=True), "Channel created")


@router.post("/channels/{channel_id}/sandbox")
async def reconnect_sandbox_channel(
    access: ChannelsManage,
    channel_id: uuid.UUID,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[ChannelOut]:
    """Tells a (restarted) sandbox about this sandbox channel again."""
    channel = await repository.get(db, access.workspace_id, channel_id)
    await service.reconnect_sandbox(db, runtime.http, runtime.settings, channel)
    after_commit(db, lambda: runtime.intake.forget(channel_id))
    await audit.log(
        "channel.sandbox_connect",
        workspace_id=access.workspace_id,
        target_type="channel",
        target_id=channel.id,
    )
    out = service.to_out(runtime.settings, channel, show_verify_token=True)
    return ok(out, "Connected to the sandbox")


@router.get("/channels/{channel_id}")
async def get_channel(
    access: ChannelsRead, channel_id: uuid.UUID, db: DbSession, runtime: RuntimeDep
) -> Envelope[ChannelOut]:
    channel = await repository.get_visible(db, access, channel_id)
    manage = access.can(Permission.CHANNELS_MANAGE)
    members = await repository.members_by_channel(db, access.workspace_id, [channel.id])
    out = service.to_out(
        runtime.settings, channel, show_verify_token=manage, member_ids=members[channel.id]
    )
    return ok(out)


@router.patch("/channels/{channel_id}")
async def update_channel(
    access: ChannelsManage,
    channel_id: uuid.UUID,
    body: ChannelUpdate,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[ChannelOut]:
    channel = await repository.get(db, access.workspace_id, channel_id)
    changes = await service.update(db, channel, body)
    await service.reconnect(runtime.http, runtime.settings, channel, changes)
    after_commit(db, lambda: runtime.intake.forget(channel_id))
    await audit.log(
        "channel.update",
        workspace_id=access.workspace_id,
        target_type="channel",
        target_id=channel.id,
        changes=changes,
    )
    return ok(service.to_out(runtime.settings, channel, show_verify_token=True), "Channel updated")


@router.delete("/channels/{channel_id}")
async def delete_channel(
    access: ChannelsManage,
    channel_id: uuid.UUID,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[None]:
    """Disconnects the channel and deletes its conversations and messages."""
    channel = await repository.get(db, access.workspace_id, channel_id)
    await service.disconnect(runtime.http, runtime.settings, channel)
    await db.delete(channel)
    await db.flush()
    after_commit(db, lambda: runtime.intake.forget(channel_id))
    await audit.log(
        "channel.delete",
        workspace_id=access.workspace_id,
        target_type="channel",
        target_id=channel_id,
    )
    return ok(None, "Channel deleted")


class UploadedMedia(BaseModel):
    id: str = Field(description="Use as `media.id` when sending through this channel")
    mime_type: str
    size: int


@router.post("/channels/{channel_id}/media", status_code=status.HTTP_201_CREATED)
async def upload_media(
    access: ConversationsReply,
    channel_id: uuid.UUID,
    file: Annotated[UploadFile, File(description="The media file")],
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[UploadedMedia]:
    """Uploads a file to the provider (checked for size and type first) for sending by id."""
    channel = await repository.get_visible(db, access, channel_id)
    data = await file.read(MAX_MEDIA_BYTES + 1)
    try:
        mime = check_media(data, file.content_type)
    except MediaRejected as exc:
        raise Unprocessable(
            str(exc), code="media_rejected", details={"reason": exc.reason}
        ) from exc
    adapter = adapter_for(channel, runtime.settings, runtime.http)
    try:
        media_id = await adapter.upload_media(data, mime, file.filename or "upload")
    except ProviderSendError as exc:
        if exc.code == CHANNEL_NOT_CONFIGURED:  # ours, not the provider's: the caller can fix it
            raise Unprocessable(exc.title, code=exc.code) from exc
        raise BadGateway(
            f"The provider refused the upload: {exc.title}",
            code="provider_error",
            details={"provider_code": exc.code},
        ) from exc
    await audit.log(
        "channel.media_upload",
        workspace_id=access.workspace_id,
        target_type="channel",
        target_id=channel.id,
        changes={"mime_type": mime, "size": len(data)},
    )
    return ok(UploadedMedia(id=media_id, mime_type=mime, size=len(data)), "Uploaded")
