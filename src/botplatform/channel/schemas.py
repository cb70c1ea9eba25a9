from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints

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


class SandboxChannelCreate(InputModel):
    name: Name = "WhatsApp sandbox"
    auto_reply: AutoReply | None = None


class ChannelUpdate(InputModel):
    name: Name | None = None
    phone_number_id: NumericId | None = Field(
        None, description="Correct a mistyped id; the channel keeps its conversations"
    )
    business_account_id: NumericId | None = None
    status: Literal["active", "disabled"] | None = None
    display_phone_number: DisplayNumber = None
    access_token: Secret | None = None
    app_secret: Secret | None = None
    verify_token: Secret | None = None
    send_rate_per_second: int | None = Field(None, ge=1, le=1000)
    messaging_limit_tier: MessagingLimitTier | None = Field(None, description=TIER_HELP)
    auto_reply: AutoReply | None = None


class ChannelOut(BaseModel):
    id: uuid.UUID
    provider: str
    name: str
    status: str
    phone_number_id: str | None
    business_account_id: str | None
    display_phone_number: str | None
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
