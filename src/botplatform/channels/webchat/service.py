"""The visitor API's rules: which channel and site a request is for, who the visitor is,
what they may read (their own conversation, only), and how what they say enters the
platform (the same durable intake as a provider's webhook)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, not_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.branding.service import logo_path
from botplatform.business_hours.service import hours_of, minutes_until_open
from botplatform.channels.intake import WebhookChannel
from botplatform.channels.webchat import wire
from botplatform.channels.webchat.site import Site, identity_valid, origin_allowed
from botplatform.channels.webchat.tokens import VERIFIED, Visitor, new_anonymous_id
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Forbidden
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.media.storage import SignedMediaUrls
from botplatform.models import ContactIdentity, Conversation, Message, Workspace

#: The most messages one history read returns (the newest).
HISTORY_LIMIT = 100
MAX_USER_ID = 64


class OriginRefused(Forbidden):
    code = "origin_not_allowed"
    message = "This site may not embed this chat widget."


class IdentityRefused(Forbidden):
    code = "identity_rejected"
    message = "The user_hash does not match this user_id."


def check_origin(channel: WebhookChannel, origin: str | None) -> Site:
    """The channel's site, if `origin` is on its allow-list; 403 otherwise (a snippet copied
    to another site does not work, and a request without an Origin is not a browser's)."""
    site = Site.of(channel.channel.config or {})
    if not origin_allowed(origin, site.allowed_origins):
        raise OriginRefused()
    return site


def visitor_id(
    channel: WebhookChannel, current: Visitor | None, user_id: str | None, given_hash: str | None
) -> str:
    """Who this session is for. A user id the site vouches for (a valid `user_hash`) is a
    verified visitor of its own, never merged into an anonymous one; a wrong hash is refused
    outright. Otherwise the browser's valid token goes on, or a new visitor begins."""
    if user_id is not None:
        if not identity_valid(channel.channel.app_secret, user_id, given_hash or ""):
            raise IdentityRefused()
        return f"{VERIFIED}{user_id}"
    if current is not None and not current.verified:
        return current.external_id
    return new_anonymous_id()  # a verified token without its hash again starts afresh


async def enter(db: AsyncSession, channel: WebhookChannel) -> None:
    await enter_workspace(db, channel.workspace_id)


def _reopens(workspace: Workspace) -> int | None:
    return minutes_until_open(hours_of(workspace), utcnow())


async def appearance(db: AsyncSession, channel: WebhookChannel, site: Site) -> dict[str, Any]:
    """What the widget shows: the channel's own look, else the workspace branding's."""
    await enter_workspace(db, channel.workspace_id)
    workspace = await db.get(Workspace, channel.workspace_id)
    assert workspace is not None  # the channel's row holds it
    reopens = _reopens(workspace)
    return {
        "name": workspace.brand_name or workspace.name,
        "welcome_message": site.welcome_message,
        "primary_color": site.primary_color or workspace.brand_primary_color or "#0b7a5a",
        "logo_url": site.logo_url or logo_path(workspace),
        "pre_chat_fields": list(site.pre_chat_fields),
        "open": reopens is None or reopens == 0,
        "reopens_in_minutes": reopens or None,
    }


async def conversation_of(
    db: AsyncSession, channel: WebhookChannel, visitor: str
) -> Conversation | None:
    ws = channel.workspace_id
    await enter_workspace(db, ws)
    identity = (
        await db.execute(
            scoped(ContactIdentity, ws).where(
                ContactIdentity.provider == "webchat", ContactIdentity.external_id == visitor
            )
        )
    ).scalar_one_or_none()
    if identity is None:
        return None
    return (
        await db.execute(
            scoped(Conversation, ws).where(
                Conversation.channel_id == channel.id,
                Conversation.contact_id == identity.contact_id,
            )
        )
    ).scalar_one_or_none()


async def history(
    db: AsyncSession,
    channel: WebhookChannel,
    visitor: str,
    since: datetime | None,
    urls: SignedMediaUrls,
) -> list[dict[str, Any]]:
    """The visitor's own conversation on this channel, oldest first: the newest messages, or
    those new or changed since `since` (a status moved: a read receipt). Internal notes and
    replies that failed to go out are not the visitor's to see."""
    conversation = await conversation_of(db, channel, visitor)
    if conversation is None:
        return []
    query = scoped(Message, channel.workspace_id).where(
        Message.conversation_id == conversation.id,
        not_(Message.is_note),
        not_(Message.deleted),
        or_(Message.direction == "inbound", Message.status != "failed"),
    )
    if since is not None:
        query = query.where(and_(Message.updated_at > since))
    rows = (
        (await db.execute(query.order_by(Message.created_at.desc()).limit(HISTORY_LIMIT)))
        .scalars()
        .all()
    )
    return [
        wire.of_row(row, urls.url_for(row.media_key) if row.media_key else None)
        for row in reversed(rows)
    ]


@dataclass(frozen=True)
class Said:
    """One visitor action, as the visitor API stores it for the channel's adapter to parse."""

    kind: str  # message | read
    visitor: str
    fields: dict[str, Any]

    def body(self) -> bytes:
        data = {"kind": self.kind, "visitor": self.visitor, "at": utcnow().isoformat()}
        return json.dumps({**data, **self.fields}, separators=(",", ":")).encode()


def new_client_id() -> str:
    return uuid.uuid4().hex
