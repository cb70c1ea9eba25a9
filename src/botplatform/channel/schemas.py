from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
)

from botplatform.channels.webchat.site import normalize_origin
from botplatform.kit.phone import PhoneNumber
from botplatform.kit.schemas import InputModel


def _numeric_id(value: str) -> str:
    if not (3 <= len(value) <= 30 and value.isascii() and value.isdigit()):
        raise ValueError("Enter the id as Meta's console shows it: digits only, e.g. 1234567890")
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Secret = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
AutoReply = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=1000),
    Field(description="Answer every inbound text with this (until bots take over); '' clears"),
]
NumericId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=30),
    AfterValidator(_numeric_id),
    Field(description="Digits only, as Meta's console shows it"),
]
DisplayNumber = Annotated[
    PhoneNumber | None,
    BeforeValidator(lambda value: None if isinstance(value, str) and not value.strip() else value),
]


MessagingLimitTier = Literal["TIER_250", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED"]
TIER_HELP = (
    "Meta's messaging limit of this number: unique customers per rolling 24 hours that "
    "broadcasts may reach; recipients beyond it wait. Unset: unlimited"
)


class WhatsAppChannelCreate(InputModel):
    provider: Literal["whatsapp"] = "whatsapp"
    name: Name
    phone_number_id: NumericId
    business_account_id: NumericId
    display_phone_number: DisplayNumber = None
    access_token: Secret | None = Field(None, description="Defaults to WHATSAPP_API_KEY")
    app_secret: Secret | None = Field(None, description="Defaults to FACEBOOK_APP_SECRET")
    verify_token: Secret | None = Field(None, description="Generated when omitted")
    send_rate_per_second: int = Field(80, ge=1, le=1000)
    messaging_limit_tier: MessagingLimitTier | None = Field(None, description=TIER_HELP)
    auto_reply: AutoReply | None = None


class MessengerChannelCreate(InputModel):
    provider: Literal["messenger"]
    name: Name
    page_id: NumericId = Field(description="The Facebook Page's id (Page settings → About)")
    access_token: Secret = Field(description="A Page access token with pages_messaging")
    app_secret: Secret | None = Field(None, description="Defaults to FACEBOOK_APP_SECRET")
    verify_token: Secret | None = Field(None, description="Generated when omitted")
    send_rate_per_second: int = Field(300, ge=1, le=1000)
    auto_reply: AutoReply | None = None


class InstagramChannelCreate(InputModel):
    provider: Literal["instagram"]
    name: Name
    instagram_account_id: NumericId = Field(
        description="The Instagram professional account's id (the webhook's entry.id)"
    )
    page_id: NumericId | None = Field(None, description="The Facebook Page linked to it")
    access_token: Secret = Field(description="A token with instagram_manage_messages")
    app_secret: Secret | None = Field(None, description="Defaults to FACEBOOK_APP_SECRET")
    verify_token: Secret | None = Field(None, description="Generated when omitted")
    send_rate_per_second: int = Field(300, ge=1, le=1000)
    auto_reply: AutoReply | None = None


def _origins(values: list[str]) -> list[str]:
    return list(dict.fromkeys(normalize_origin(v) for v in values))


Origins = Annotated[
    list[Annotated[str, StringConstraints(max_length=300)]],
    Field(max_length=50),
    AfterValidator(_origins),
]
WelcomeMessage = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
WidgetColor = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^#[0-9a-fA-F]{6}$")
]
LogoUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=1000, pattern=r"^https://")
]
PreChatFields = Annotated[list[Literal["name", "email"]], Field(max_length=2)]


class WebchatChannelCreate(InputModel):
    """A website chat widget: one per website (or family of sites sharing a widget)."""

    provider: Literal["webchat"]
    name: Name
    allowed_origins: Origins = Field(
        min_length=1,
        description="Sites that may embed the widget, e.g. https://www.example.com "
        "(https://*.example.com for every subdomain); any other origin is refused",
    )
    welcome_message: WelcomeMessage | None = Field(None, description="Shown when it opens")
    primary_color: WidgetColor | None = Field(
        None, description="The widget's colour; the workspace branding's when unset"
    )
    logo_url: LogoUrl | None = Field(
        None, description="A https image for the header; the workspace logo when unset"
    )
    pre_chat_fields: PreChatFields = Field(
        default_factory=list, description="Asked before the first message: name, email"
    )
    identity_secret: Secret | None = Field(
        None,
        description="Signs logged-in users' ids (user_hash = HMAC-SHA256 hex); generated "
        "when omitted",
    )
    auto_reply: AutoReply | None = None


class TelegramChannelCreate(InputModel):
    provider: Literal["telegram"]
    name: Name | None = Field(None, description="Defaults to the bot's name")
    bot_token: Secret = Field(description="The token BotFather gave the bot (123456:ABC…)")
    send_rate_per_second: int = Field(
        30, ge=1, le=30, description="Telegram's limit is 30 messages a second per bot"
    )
    auto_reply: AutoReply | None = None


def _bot_token(value: str) -> str:
    if not value.startswith("xoxb-"):
        raise ValueError("Paste the app's Bot User OAuth Token: it starts with xoxb-")
    return value


class SlackChannelCreate(InputModel):
    """A Slack app installed in a Slack workspace: its bot token and signing secret. The
    platform checks the token with auth.test and keeps the workspace and bot user it names."""

    provider: Literal["slack"]
    name: Name | None = Field(None, description="Defaults to the Slack workspace's name")
    bot_token: Annotated[Secret, AfterValidator(_bot_token)] = Field(
        description="The app's Bot User OAuth Token (xoxb-…), OAuth & Permissions page"
    )
    signing_secret: Secret = Field(description="The app's Signing Secret (Basic Information)")
    send_rate_per_second: int = Field(20, ge=1, le=1000)
    auto_reply: AutoReply | None = None


class UnavailableChannelCreate(BaseModel):
    """A channel of SPEC §3 not built yet: refused with `channel_not_available`."""

    model_config = ConfigDict(extra="allow")
    provider: str


BUILT = ("whatsapp", "messenger", "instagram", "webchat", "slack", "telegram")
NOT_YET: tuple[str, ...] = ()


def _provider_of(value: Any) -> str | None:
    # Tags start with "~": an error's field is then "body.page_id", not
    # "body.messenger.page_id" (kit.handlers leaves tags out).
    provider = value.get("provider", "whatsapp") if isinstance(value, dict) else value.provider
    if provider in BUILT:
        return f"~{provider}"
    return "~unavailable" if provider in NOT_YET else None


ChannelCreate = Annotated[
    Annotated[WhatsAppChannelCreate, Tag("~whatsapp")]
    | Annotated[MessengerChannelCreate, Tag("~messenger")]
    | Annotated[InstagramChannelCreate, Tag("~instagram")]
    | Annotated[WebchatChannelCreate, Tag("~webchat")]
    | Annotated[SlackChannelCreate, Tag("~slack")]
    | Annotated[TelegramChannelCreate, Tag("~telegram")]
    | Annotated[UnavailableChannelCreate, Tag("~unavailable")],
    Discriminator(_provider_of),
]
MetaChannelCreate = MessengerChannelCreate | InstagramChannelCreate


class SandboxChannelCreate(InputModel):
    provider: Literal["whatsapp", "messenger", "instagram"] = "whatsapp"
    name: Name | None = Field(None, description='Defaults to e.g. "WhatsApp sandbox"')

    def display_name(self) -> str:
        titles = {"whatsapp": "WhatsApp", "messenger": "Messenger", "instagram": "Instagram"}
        return self.name or f"{titles[self.provider]} sandbox"

    auto_reply: AutoReply | None = None


class ChannelUpdate(InputModel):
    name: Name | None = None
    phone_number_id: NumericId | None = Field(
        None, description="Correct a mistyped id; the channel keeps its conversations"
    )
    business_account_id: NumericId | None = None
    page_id: NumericId | None = None
    instagram_account_id: NumericId | None = None
    status: Literal["active", "disabled"] | None = None
    display_phone_number: DisplayNumber = None
    access_token: Secret | None = None
    app_secret: Secret | None = None
    verify_token: Secret | None = None
    send_rate_per_second: int | None = Field(None, ge=1, le=1000)
    messaging_limit_tier: MessagingLimitTier | None = Field(None, description=TIER_HELP)
    auto_reply: AutoReply | None = None
    allowed_origins: Origins | None = Field(None, description="Webchat: sites that may embed it")
    welcome_message: WelcomeMessage | None = Field(None, description="Webchat; '' clears")
    primary_color: WidgetColor | None = None
    logo_url: LogoUrl | None = None
    pre_chat_fields: PreChatFields | None = None
    identity_secret: Secret | None = Field(None, description="Webchat: a new identity secret")


class WebchatOut(BaseModel):
    allowed_origins: list[str]
    welcome_message: str | None
    primary_color: str | None
    logo_url: str | None
    pre_chat_fields: list[str]
    script_url: str = Field(description="The widget's script")
    snippet: str = Field(description="Paste before </body> on every page of the site")
    identity_secret_hint: str | None = Field(
        description="Masked; shown in full to channels:manage as identity_secret"
    )
    identity_secret: str | None = Field(
        None, description="For the site's backend: user_hash = HMAC-SHA256(secret, user_id)"
    )


class ChannelOut(BaseModel):
    id: uuid.UUID
    provider: str
    name: str
    status: str
    phone_number_id: str | None
    business_account_id: str | None
    display_phone_number: str | None
    page_id: str | None = Field(None, description="Messenger/Instagram: the Facebook Page")
    instagram_account_id: str | None = Field(None, description="Instagram: the account's id")
    team_id: str | None = Field(None, description="Slack: the workspace the app is installed in")
    telegram_bot_username: str | None = Field(None, description="Telegram: the bot's @username")
    send_rate_per_second: int
    messaging_limit_tier: str | None = None
    auto_reply: str | None
    sandbox: bool = Field(False, description="Connected to `botplatform sandbox whatsapp`")
    webhook_url: str = Field(description="Paste into Meta's console as the callback URL")
    verify_token: str | None = Field(description="Paste into Meta's console (channels:manage)")
    access_token_hint: str | None = Field(description="Masked; the token itself is never shown")
    app_secret_hint: str | None
    created_at: datetime
    member_ids: list[uuid.UUID] = Field(
        default_factory=list,
        description="Members assigned to this channel; agents see only their channels",
    )
    webchat: WebchatOut | None = Field(None, description="The website chat widget's settings")
