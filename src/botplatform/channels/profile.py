"""A contact's name and picture from the provider, off the message path: Messenger and
Instagram send only an id with a message, so a job reads the profile from the Graph API when
the identity is first seen, and again when they write with a profile over a day old (never
more than once a day). Where the provider's picture URL must not be shown (Telegram's carries
the bot token), the adapter downloads the picture instead (`avatar`), once per identity, and
it is stored in our media storage: the API then signs a link to our copy."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channel import cache as channel_cache
from botplatform.channels.base import ChannelInfo, ProviderSendError
from botplatform.channels.registry import ADAPTERS, adapter_for
from botplatform.events import payloads
from botplatform.events.service import emit
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.media.storage import ALLOWED_MIME_TYPES, MediaRejected, check_media, media_key
from botplatform.models import Contact, ContactIdentity
from botplatform.worker.jobs import JobContext, enqueue, job

FETCH_PROFILE_JOB = "fetch_contact_profile"
#: A profile is read again at most this often.
REFRESH_AFTER = timedelta(days=1)

log = get_logger("botplatform.channels")


class ProfileReader(Protocol):
    async def profile(self, external_id: str) -> dict[str, str | None]: ...


class AvatarReader(Protocol):
    async def avatar(self, external_id: str) -> tuple[bytes, str] | None:
        """The picture's bytes and type, or None when the person shows none."""
        ...


def has_profiles(provider: str) -> bool:
    adapter = ADAPTERS.get(provider)
    return adapter is not None and hasattr(adapter, "profile")


def queue_fetch(db: AsyncSession, channel: ChannelInfo, external_id: str) -> None:
    """After the commit, a job reads this new identity's profile (where the channel has one)."""
    if has_profiles(channel.provider):
        enqueue(db, FETCH_PROFILE_JOB, str(channel.workspace_id), str(channel.id), external_id)


def is_stale(fetched_at: datetime | None) -> bool:
    """A profile never read, or read over a day ago: due for a refresh."""
    return fetched_at is None or utcnow() - fetched_at >= REFRESH_AFTER


def refresh_if_stale(
    db: AsyncSession, channel: ChannelInfo, external_id: str, fetched_at: datetime | None
) -> None:
    """A known contact wrote again: their profile is read again when it is a day old."""
    if is_stale(fetched_at):
        queue_fetch(db, channel, external_id)


@job(FETCH_PROFILE_JOB, max_retries=5, min_backoff_ms=5_000)
async def fetch_contact_profile(
    ctx: JobContext, workspace_id: str, channel_id: str, external_id: str
) -> None:
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws)
    channel = await channel_cache.get(ctx.db, ws, uuid.UUID(channel_id))
    if channel is None or not has_profiles(channel.provider):
        return
    identity = (
        await ctx.db.execute(
            scoped(ContactIdentity, ws).where(
                ContactIdentity.provider == channel.provider,
                ContactIdentity.external_id == external_id,
            )
        )
    ).scalar_one_or_none()
    if identity is None:
        return
    fetched = identity.profile_fetched_at
    if not is_stale(fetched):
        return  # read within the day: cached
    await ctx.db.commit()  # nothing held open across the provider call
    reader: ProfileReader = adapter_for(channel, ctx.runtime.settings, ctx.runtime.http)  # type: ignore[assignment]
    try:
        profile = await reader.profile(external_id)
    except ProviderSendError as exc:
        if exc.retryable:
            raise
        log.info("profile_unavailable", channel_id=channel_id, code=exc.code)
        profile = {"name": None, "picture": None}
    avatar = None
    if identity.profile_picture_key is None and hasattr(reader, "avatar"):
        avatar = await _fetch_avatar(ctx, ws, reader, external_id)  # type: ignore[arg-type]
    await _store(ctx.db, ws, identity.id, profile, avatar)
    await ctx.db.commit()


async def _fetch_avatar(
    ctx: JobContext, ws: uuid.UUID, reader: AvatarReader, external_id: str
) -> str:
    """The picture, downloaded once and put in media storage: its key, or "" when there is
    none or it could not be had. Never retried: an avatar is not worth a retry storm, and
    the contact reads well without one."""
    try:
        found = await reader.avatar(external_id)
        if found is None:
            return ""
        data, mime = found
        mime = check_media(data, mime)
        if not mime.startswith("image/"):
            return ""
        key = media_key(ws, hashlib.sha256(data).hexdigest(), ALLOWED_MIME_TYPES[mime])
        await ctx.runtime.media.put(key, data, mime)
    except (ProviderSendError, MediaRejected, OSError) as exc:
        log.info("avatar_unavailable", workspace_id=str(ws), error=str(exc)[:200])
        return ""
    return key


async def _store(
    db: AsyncSession,
    ws: uuid.UUID,
    identity_id: uuid.UUID,
    profile: dict[str, str | None],
    avatar: str | None = None,
) -> None:
    await enter_workspace(db, ws)
    identity = await db.get(ContactIdentity, identity_id, populate_existing=True)
    if identity is None:
        return
    if avatar is not None:
        identity.profile_picture_key = avatar
    name, picture = profile.get("name"), profile.get("picture")
    identity.profile_fetched_at = utcnow()
    identity.profile_picture_url = (picture or identity.profile_picture_url or None) and str(
        picture or identity.profile_picture_url
    )[:1000]
    contact = await db.get(Contact, identity.contact_id)
    # The name shown is the profile's unless a person renamed the contact.
    if (
        contact is not None
        and name
        and contact.name in ("", identity.external_id, identity.profile_name)
    ):
        contact.name = name[:200]
        contact.updated_at = utcnow()
        await emit(db, ws, "contact.updated", payloads.contact_event(contact, ["name"]))
    if name:
        identity.profile_name = name[:200]
    await db.flush()
