"""The normalized message model every channel speaks, inbound and outbound.

Adapters turn a provider's webhook payload into a list of `InboundEvent`s (`parse`), and an
`OutboundMessage` into a provider request (`send`). Nothing outside `channels/<provider>/`
knows a provider's payload shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class MessageType(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"  # buttons/lists sent, and their replies received
    TEMPLATE = "template"
    REACTION = "reaction"
    UNSUPPORTED = "unsupported"


MEDIA_TYPES = frozenset(
    {MessageType.IMAGE, MessageType.VIDEO, MessageType.AUDIO, MessageType.DOCUMENT,
     MessageType.STICKER}
)  # fmt: skip


class Capability(StrEnum):
    """What a channel can show besides text; a message using something its channel lacks is
    degraded in one place (`channels.degrade`), e.g. buttons become numbered text."""

    BUTTONS = "buttons"
    LISTS = "lists"
    MEDIA = "media"
    TEMPLATES = "templates"
    # What the channel can do besides showing messages (`channels.actions`):
    TYPING = "typing"  # show the customer a typing indicator (`sender_action`)
    EDITS = "edits"  # change the text of a message already sent (`edit_of`)


class DeliveryStatus(StrEnum):
    """Outbound message states, in order; `failed` can follow any of them."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"  # voice notes: listened to
    FAILED = "failed"


STATUS_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
    DeliveryStatus.PLAYED: 4,
}


@dataclass(frozen=True)
class Media:
    """Media as the provider describes it; the bytes are fetched later by a job."""

    provider_media_id: str | None = None
    url: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool = False
    animated: bool = False


@dataclass(frozen=True)
class Reaction:
    message_id: str  # the provider id of the message reacted to
    emoji: str  # "" removes the reaction


@dataclass(frozen=True)
class Reply:
    """A reply to buttons or a list (inbound `interactive`)."""

    kind: str  # "button_reply" | "list_reply" | "quick_reply"
    id: str  # the payload / id the button or row was sent with
    title: str
    description: str | None = None


@dataclass(frozen=True)
class Content:
    """What a message says, whichever way it travels."""

    type: MessageType
    text: str | None = None
    media: Media | None = None
    location: dict[str, Any] | None = None  # latitude, longitude, name, address, url
    contacts: list[dict[str, Any]] | None = None
    reply: Reply | None = None
    reaction: Reaction | None = None


@dataclass(frozen=True)
class InboundMessage:
    provider_message_id: str
    sender_id: str  # the contact's id on the channel (WhatsApp: wa_id)
    sender_name: str | None
    timestamp: datetime
    content: Content
    reply_to: str | None = None  # provider id of the message this one answers
    # Which of the person's conversations on the channel this belongs to, on a channel with
    # threads (Slack: the provider id of its thread's root, where answers go); None: their
    # one conversation, as on every other channel.
    thread: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referral: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderError:
    code: int | str
    title: str
    message: str | None = None
    details: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    provider_message_id: str
    status: DeliveryStatus
    timestamp: datetime
    recipient_id: str | None = None
    errors: tuple[ProviderError, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageEdited:
    provider_message_id: str  # the id of the message that was edited
    sender_id: str
    timestamp: datetime
    content: Content
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageDeleted:
    provider_message_id: str  # the id of the message that was deleted
    sender_id: str
    timestamp: datetime
    raw: dict[str, Any] = field(default_factory=dict)


#: System event kinds that change a contact's consent (a Telegram user blocking the bot, or
#: starting it again) → the consent ledger's action.
CONSENT_EVENTS = {"opted_out": "opt_out", "opted_in": "opt_in"}


@dataclass(frozen=True)
class SystemEvent:
    """Anything about the account or a contact that is not a message: identity or number
    changes, template status, marketing preferences, account updates."""

    kind: str
    timestamp: datetime | None
    sender_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageEcho:
    """A message the business account sent from outside the platform (Messenger and
    Instagram echo the Page's own messages): recorded as outbound, never answered."""

    provider_message_id: str
    recipient_id: str  # the contact's id on the channel
    timestamp: datetime
    content: Content
    app_id: str | None = None  # the app that sent it (ours: already recorded)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Watermark:
    """Every outbound message to `recipient_id` sent up to `watermark` reached `status`
    (Messenger's delivery and read receipts name a time, not each message)."""

    recipient_id: str
    status: DeliveryStatus  # DELIVERED or READ
    watermark: datetime
    provider_message_ids: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)


InboundEvent = (
    InboundMessage
    | StatusUpdate
    | MessageEdited
    | MessageDeleted
    | SystemEvent
    | MessageEcho
    | Watermark
)


@dataclass(frozen=True)
class Button:
    id: str
    title: str


@dataclass(frozen=True)
class ListRow:
    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class ListSection:
    title: str
    rows: tuple[ListRow, ...]


@dataclass(frozen=True)
class Template:
    name: str
    language: str
    components: tuple[dict[str, Any], ...] = ()  # the provider's component objects


@dataclass(frozen=True)
class OutboundMessage:
    """One logical send. `idempotency_key` is stable across retries of the same send."""

    recipient_id: str
    content: Content
    idempotency_key: str
    reply_to: str | None = None
    preview_url: bool = False
    buttons: tuple[Button, ...] = ()
    list_button: str | None = None
    sections: tuple[ListSection, ...] = ()
    header: str | None = None
    footer: str | None = None
    template: Template | None = None
    mark_read: str | None = None  # provider id of an inbound message to mark as read
    # Our message id, echoed by the provider in status webhooks (WhatsApp:
    # biz_opaque_callback_data): it ties a send whose answer was lost to its row.
    callback_data: str | None = None
    # Messenger's message tag, for a send outside the 24-hour window (channels.policy).
    tag: str | None = None
    # Typing indicator instead of a message (Messenger's sender_action: typing_on/off).
    sender_action: str | None = None
    # The provider id of one of our messages whose text this one replaces (Telegram:
    # editMessageText), instead of a new message.
    edit_of: str | None = None


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    raw: dict[str, Any] = field(default_factory=dict)
