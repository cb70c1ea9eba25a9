from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.audit.service import diff
from botplatform.channel import sandbox, slack_install
from botplatform.channel.schemas import (
    ChannelCreate,
    ChannelOut,
    ChannelUpdate,
    InstagramChannelCreate,
    MetaChannelCreate,
    SandboxChannelCreate,
    SlackChannelCreate,
    TelegramChannelCreate,
    UnavailableChannelCreate,
    WebchatChannelCreate,
    WebchatOut,
    WhatsAppChannelCreate,
)
from botplatform.channels.base import ProviderSendError
from botplatform.channels.registry import not_available
from botplatform.channels.telegram import connect as telegram
from botplatform.config import Settings
from botplatform.kit.crypto import mask
from botplatform.kit.errors import BadGateway, Conflict, Unprocessable
from botplatform.kit.scoping import scoped
from botplatform.models import Channel
from botplatform.usage import service as usage

SECRET_FIELDS = ("access_token", "app_secret", "verify_token")
CONFIG_FIELDS = (
    "display_phone_number",
    "auto_reply",
    "phone_number_id",
    "business_account_id",
    "messaging_limit_tier",
    "page_id",
    "instagram_account_id",
    "allowed_origins",
    "welcome_message",
    "primary_color",
    "logo_url",
    "pre_chat_fields",
    "team_id",
    "team_name",
    "bot_user_id",
    "bot_id",
)
#: Webchat's identity secret lives in the encrypted `app_secret` column.
RENAMED_SECRETS = {"identity_secret": "app_secret"}
#: The config field naming the provider's account: one channel per account in a workspace.
ACCOUNT_FIELD = {
    "whatsapp": "phone_number_id",
    "messenger": "page_id",
    "instagram": "instagram_account_id",
    "slack": "team_id",
    "telegram": "bot_id",
}


def webhook_url(settings: Settings, channel: Channel) -> str:
    return _webhook_url(settings, channel.provider, channel.id)


def _webhook_url(settings: Settings, provider: str, channel_id: uuid.UUID) -> str:
    return f"{settings.app_url.rstrip('/')}/webhooks/{provider}/{channel_id}"


def widget_script_url(settings: Settings, channel_id: uuid.UUID) -> str:
    return f"{settings.app_url.rstrip('/')}/widget/{channel_id}.js"


def _webchat_out(settings: Settings, channel: Channel, show_secret: bool) -> WebchatOut:
    config = channel.config or {}
    script = widget_script_url(settings, channel.id)
    return WebchatOut(
        allowed_origins=list(config.get("allowed_origins") or []),
        welcome_message=config.get("welcome_message"),
        primary_color=config.get("primary_color"),
        logo_url=config.get("logo_url"),
        pre_chat_fields=list(config.get("pre_chat_fields") or []),
        script_url=script,
        snippet=f'<script src="{script}" async></script>',
        identity_secret_hint=mask(channel.app_secret),
        identity_secret=channel.app_secret if show_secret else None,
    )


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
        page_id=config.get("page_id"),
        instagram_account_id=config.get("instagram_account_id"),
        team_id=config.get("team_id"),
        telegram_bot_username=config.get("bot_username"),
        send_rate_per_second=channel.send_rate_per_second,
        messaging_limit_tier=config.get("messaging_limit_tier"),
        auto_reply=config.get("auto_reply"),
        sandbox=bool(config.get("sandbox")),
        webhook_url=webhook_url(settings, channel),
        verify_token=channel.verify_token if show_verify_token else mask(channel.verify_token),
        access_token_hint=mask(channel.access_token),
        app_secret_hint=mask(channel.app_secret),
        created_at=channel.created_at,
        member_ids=member_ids or [],
        webchat=(
            _webchat_out(settings, channel, show_verify_token)
            if channel.provider == "webchat"
            else None
        ),
    )


async def _ensure_number_free(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    account_id: str,
    but: uuid.UUID | None = None,
    provider: str = "whatsapp",
) -> None:
    field = ACCOUNT_FIELD[provider]
    for channel in (await db.execute(scoped(Channel, workspace_id))).scalars():
        same = channel.provider == provider and channel.config.get(field) == account_id
        if channel.id != but and same:
            what = "phone number" if provider == "whatsapp" else "account"
            raise Conflict(f"This {what} is already connected.", code="channel_exists")


async def create(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    data: ChannelCreate,
    http: httpx.AsyncClient | None = None,
    settings: Settings | None = None,
) -> Channel:
    if isinstance(data, UnavailableChannelCreate):
        raise not_available(data.provider)
    if isinstance(data, TelegramChannelCreate):  # Telegram is told first: create_telegram
        raise TypeError("a Telegram channel is created with create_telegram")
    await usage.ensure_room(db, workspace_id, "channels")
    if isinstance(data, WebchatChannelCreate):
        return await _create_webchat(db, workspace_id, data)
    if isinstance(data, SlackChannelCreate):
        if http is None or settings is None:
            raise not_available(data.provider)
        installed = await slack_install.check_token(http, settings, data.bot_token)
        return await slack_install.create_channel(
            db,
            workspace_id,
            installed,
            bot_token=data.bot_token,
            signing_secret=data.signing_secret,
            name=data.name,
            auto_reply=data.auto_reply,
            send_rate_per_second=data.send_rate_per_second,
        )
    if not isinstance(data, WhatsAppChannelCreate):
        return await _create_meta(db, workspace_id, data)
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
            "messaging_limit_tier": data.messaging_limit_tier,
        },
        access_token=data.access_token,
        app_secret=data.app_secret,
        verify_token=data.verify_token or secrets.token_urlsafe(24),
        send_rate_per_second=data.send_rate_per_second,
    )
    db.add(channel)
    await db.flush()
    return channel


async def _create_meta(
    db: AsyncSession, workspace_id: uuid.UUID, data: MetaChannelCreate
) -> Channel:
    """A Messenger or Instagram channel: the Page (or Instagram account) and its token."""
    config: dict[str, Any] = {"page_id": data.page_id, "auto_reply": data.auto_reply or None}
    if isinstance(data, InstagramChannelCreate):
        config["instagram_account_id"] = data.instagram_account_id
    await _ensure_number_free(
        db, workspace_id, config[ACCOUNT_FIELD[data.provider]], provider=data.provider
    )
    channel = Channel(
        workspace_id=workspace_id,
        provider=data.provider,
        name=data.name,
        status="active",
        config=config,
        access_token=data.access_token,
        app_secret=data.app_secret,
        verify_token=data.verify_token or secrets.token_urlsafe(24),
        send_rate_per_second=data.send_rate_per_second,
    )
    db.add(channel)
    await db.flush()
    return channel


async def _create_webchat(
    db: AsyncSession, workspace_id: uuid.UUID, data: WebchatChannelCreate
) -> Channel:
    """A website chat widget: its sites, its look, and the secret that signs user ids."""
    channel = Channel(
        workspace_id=workspace_id,
        provider="webchat",
        name=data.name,
        status="active",
        config={
            "allowed_origins": data.allowed_origins,
            "welcome_message": data.welcome_message or None,
            "primary_color": data.primary_color,
            "logo_url": data.logo_url,
            "pre_chat_fields": data.pre_chat_fields,
            "auto_reply": data.auto_reply or None,
        },
        app_secret=data.identity_secret or secrets.token_urlsafe(32),
        verify_token=secrets.token_urlsafe(24),
        send_rate_per_second=1000,
    )
    db.add(channel)
    await db.flush()
    return channel


async def create_telegram(
    db: AsyncSession,
    http: httpx.AsyncClient,
    settings: Settings,
    workspace_id: uuid.UUID,
    data: TelegramChannelCreate,
) -> Channel:
    """A Telegram bot: its token checked (`getMe`), then its webhook pointed at this channel
    with a fresh secret token (`setWebhook`)."""
    await usage.ensure_room(db, workspace_id, "channels")
    bot = await _telegram(telegram.identify(http, settings, data.bot_token))
    await _ensure_number_free(db, workspace_id, str(bot.id), provider="telegram")
    # Telegram's secret_token: 1-256 of A-Z a-z 0-9 _ -, which token_urlsafe keeps to.
    secret = secrets.token_urlsafe(32)
    channel = Channel(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        provider="telegram",
        name=data.name or bot.name or f"@{bot.username}",
        status="active",
        config={
            "bot_id": str(bot.id),
            "bot_username": bot.username,
            "auto_reply": data.auto_reply or None,
        },
        access_token=data.bot_token,
        verify_token=secret,
        send_rate_per_second=data.send_rate_per_second,
    )
    url = _webhook_url(settings, "telegram", channel.id)
    await _telegram(telegram.register(http, settings, data.bot_token, url, secret))
    db.add(channel)
    await db.flush()
    return channel


async def _telegram(call: Any) -> Any:
    """A Bot API call made for the user: a refused token is theirs to fix (422), anything
    else is Telegram's (502)."""
    try:
        return await call
    except ProviderSendError as exc:
        if not exc.retryable:
            raise Unprocessable(
                f"Telegram refused the bot token: {exc.title}",
                code="invalid_bot_token",
                details={"provider_code": exc.code},
            ) from exc
        raise BadGateway(
            f"Telegram could not be reached: {exc.title}",
            code="provider_error",
            details={"provider_code": exc.code},
        ) from exc


async def reconnect(
    http: httpx.AsyncClient, settings: Settings, channel: Channel, changed: dict[str, Any]
) -> None:
    """After a PATCH: a Telegram bot's new token (or secret) is told to Telegram at once,
    or the webhooks would stop; the token must still be the same bot's."""
    if channel.provider != "telegram" or not {"access_token", "verify_token"} & set(changed):
        return
    token, secret = channel.access_token or "", channel.verify_token or ""
    bot = await _telegram(telegram.identify(http, settings, token))
    if str(bot.id) != str(channel.config.get("bot_id")):
        raise Unprocessable(
            "This token belongs to another bot: connect that bot as a new channel.",
            code="invalid_bot_token",
        )
    if not secret or not all(c.isascii() and (c.isalnum() or c in "_-") for c in secret):
        raise Unprocessable(
            "Telegram's secret token takes only letters, digits, _ and -.",
            code="validation_error",
            details={"field": "body.verify_token"},
        )
    url = webhook_url(settings, channel)
    await _telegram(telegram.register(http, settings, token, url, secret))


async def disconnect(http: httpx.AsyncClient, settings: Settings, channel: Channel) -> None:
    """Tells the provider to stop sending this channel's webhooks, where it is told that way
    (Telegram's deleteWebhook); best effort, so a revoked token never blocks a delete."""
    if channel.provider == "telegram" and channel.access_token:
        await telegram.disconnect(http, settings, channel.access_token)


async def create_sandbox(
    db: AsyncSession,
    http: httpx.AsyncClient,
    settings: Settings,
    workspace_id: uuid.UUID,
    data: SandboxChannelCreate,
) -> Channel:
    """A channel on the sandbox, its ids and credentials chosen here and by the sandbox."""
    await usage.ensure_room(db, workspace_id, "channels")
    if data.provider != "whatsapp":
        return await _create_sandbox_page(db, http, settings, workspace_id, data)
    channel_id, phone_number_id = uuid.uuid4(), sandbox.new_phone_number_id()
    number = await sandbox.connect(
        http,
        settings,
        phone_number_id,
        _webhook_url(settings, "whatsapp", channel_id),
        # A number of its own (555: fictional), so two sandbox channels look different.
        f"1555{phone_number_id[-7:]}",
        sandbox.new_phone_number_id(),  # and a business account of its own (templates)
    )
    channel = Channel(
        id=channel_id,
        workspace_id=workspace_id,
        provider="whatsapp",
        name=data.display_name(),
        status="active",
        config={
            "phone_number_id": number.phone_number_id,
            "business_account_id": number.business_account_id,
            "display_phone_number": f"+{number.display_phone_number}",
            "auto_reply": data.auto_reply or None,
            "sandbox": True,
        },
        access_token=number.access_token,
        app_secret=number.app_secret,
        verify_token=secrets.token_urlsafe(24),
    )
    db.add(channel)
    await db.flush()
    return channel


async def _create_sandbox_page(
    db: AsyncSession,
    http: httpx.AsyncClient,
    settings: Settings,
    workspace_id: uuid.UUID,
    data: SandboxChannelCreate,
) -> Channel:
    channel_id, page_id = uuid.uuid4(), sandbox.new_phone_number_id()
    page = await sandbox.connect_page(
        http, settings, page_id, _webhook_url(settings, data.provider, channel_id), data.provider
    )
    config: dict[str, Any] = {"page_id": page.page_id, "auto_reply": data.auto_reply or None}
    if data.provider == "instagram":
        config["instagram_account_id"] = page.page_id
    channel = Channel(
        id=channel_id,
        workspace_id=workspace_id,
        provider=data.provider,
        name=data.display_name(),
        status="active",
        config={**config, "sandbox": True},
        access_token=page.access_token,
        app_secret=page.app_secret,
        verify_token=secrets.token_urlsafe(24),
        send_rate_per_second=300,
    )
    db.add(channel)
    await db.flush()
    return channel


async def reconnect_sandbox(
    db: AsyncSession, http: httpx.AsyncClient, settings: Settings, channel: Channel
) -> None:
    """Tell a (restarted) sandbox about this sandbox channel again; take its credentials."""
    if not channel.config.get("sandbox"):
        raise Conflict(
            "Only a channel created for the sandbox can be connected to it.",
            code="not_a_sandbox_channel",
        )
    if channel.provider != "whatsapp":
        page = await sandbox.connect_page(
            http,
            settings,
            str(channel.config.get("page_id")),
            webhook_url(settings, channel),
            channel.provider,
        )
        channel.access_token, channel.app_secret = page.access_token, page.app_secret
        await db.flush()
        return
    number = await sandbox.connect(
        http,
        settings,
        str(channel.config.get("phone_number_id")),
        webhook_url(settings, channel),
        str(channel.config.get("display_phone_number") or "") or None,
        str(channel.config.get("business_account_id") or "") or None,
    )
    channel.access_token, channel.app_secret = number.access_token, number.app_secret
    await db.flush()


async def update(db: AsyncSession, channel: Channel, data: ChannelUpdate) -> dict[str, Any]:
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    field = ACCOUNT_FIELD.get(channel.provider, "phone_number_id")
    if field in changes:
        await _ensure_number_free(
            db, channel.workspace_id, changes[field], channel.id, channel.provider
        )
    for alias, column in RENAMED_SECRETS.items():
        if alias in changes:
            changes[column] = changes.pop(alias)
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
