from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, UploadFile, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import ChannelsManage, ChannelsRead, ConversationsReply
from botplatform.authz.permissions import Permission
from botplatform.channel import repository, service, slack_install
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
from botplatform.kit.errors import BadGateway, BadRequest, Forbidden, Unprocessable
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.media.storage import MAX_MEDIA_BYTES, MediaRejected, check_media
from botplatform.models import Channel, User
from botplatform.runtime import RuntimeDep

router = APIRouter(prefix="/workspaces/{ws}", tags=["channels"])
#: Public: Slack's OAuth redirect comes back here (the signed state is the authority).
oauth_router = APIRouter(prefix="/oauth", tags=["channels"])


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
    Facebook Page (`messenger`), an Instagram professional account (`instagram`) or a Slack
    app's bot token and signing secret (`slack`, checked with auth.test). The answer gives
    the webhook URL (and verify token) to paste into the provider's console; tokens and
    secrets are stored encrypted and never shown. A Telegram bot (`telegram`, its
    `bot_token`) is checked with getMe and its webhook registered here: nothing to paste
    (422 `invalid_bot_token` when Telegram refuses it). Providers not built yet answer 501
    `channel_not_available`."""
    if isinstance(body, TelegramChannelCreate):
        channel = await service.create_telegram(
            db, runtime.http, runtime.settings, access.workspace_id, body
        )
    else:
        channel = await service.create(
            db, access.workspace_id, body, runtime.http, runtime.settings
        )
    await audit.log(
        "channel.create",
        workspace_id=access.workspace_id,
        target_type="channel",
        target_id=channel.id,
        changes={"provider": channel.provider, "name": channel.name},
    )
    return ok(service.to_out(runtime.settings, channel, show_verify_token=True), "Channel created")


class SlackInstallOut(BaseModel):
    url: str = Field(description="Send the browser here: Slack's page to install the app")


@router.get("/channels/slack/install")
async def slack_install_link(
    access: ChannelsManage, runtime: RuntimeDep
) -> Envelope[SlackInstallOut]:
    """ "Add to Slack": the link to Slack's authorize page for the platform's own app
    (SLACK_CLIENT_ID…), valid 10 minutes. After the install Slack sends the browser to
    `/oauth/slack/callback`, which connects the channel. 501 `slack_oauth_not_configured`
    without the platform's Slack app."""
    user = access.principal.user
    if user is None:  # an install is a person's, in a browser
        raise Forbidden("Add to Slack is started by a signed-in member.", code="user_required")
    url = slack_install.install_url(runtime.settings, access.workspace_id, user.id)
    return ok(SlackInstallOut(url=url))


@oauth_router.get("/slack/callback", include_in_schema=True)
async def slack_install_callback(
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
    state: str,
    code: str | None = None,
    error: str | None = None,
) -> RedirectResponse:
    """Where Slack sends the browser back after "Add to Slack": the signed `state` names the
    workspace and the member who started it (still allowed to connect channels), the `code`
    is traded for the bot token (oauth.v2.access) and the channel is created; then on to the
    dashboard's channels page. 400 `invalid_state`/`install_cancelled`, 422
    `slack_install_failed`."""
    workspace_id, user_id = slack_install.read_state(runtime.settings, state)
    if error or not code:
        raise BadRequest(f"Slack did not install the app ({error or 'no code'}).",
                         code="install_cancelled")  # fmt: skip
    channel = await slack_install.finish_install(
        db, runtime.http, runtime.settings, workspace_id, user_id, code
    )
    user = await db.get(User, user_id)
    await audit.log(
        "channel.create",
        workspace_id=workspace_id,
        target_type="channel",
        target_id=channel.id,
        changes={"provider": "slack", "name": channel.name, "install": "oauth"},
        user=user,
    )
    return RedirectResponse(f"/app/w/{workspace_id}/channels", status_code=303)


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
