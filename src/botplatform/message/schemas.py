from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from botplatform.kit.phone import normalize_phone
from botplatform.kit.schemas import InputModel

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=20)]


class ButtonIn(InputModel):
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    title: ShortText


class RowIn(InputModel):
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    title: Annotated[str, StringConstraints(min_length=1, max_length=24)]
    description: Annotated[str, StringConstraints(max_length=72)] | None = None


class SectionIn(InputModel):
    title: Annotated[str, StringConstraints(max_length=24)] = ""
    rows: list[RowIn] = Field(min_length=1, max_length=10)


class MediaIn(InputModel):
    link: Annotated[str, StringConstraints(pattern=r"^https://", max_length=2000)] | None = None
    id: Annotated[str, StringConstraints(max_length=200)] | None = None
    caption: Annotated[str, StringConstraints(max_length=1024)] | None = None
    filename: Annotated[str, StringConstraints(max_length=240)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MediaIn:
        if bool(self.link) == bool(self.id):
            raise ValueError("give exactly one of `link` or `id`")
        return self


class LocationIn(InputModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    address: Annotated[str, StringConstraints(max_length=500)] | None = None


class TemplateIn(InputModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    language: Annotated[str, StringConstraints(min_length=2, max_length=15)]
    components: list[dict[str, Any]] = Field(default_factory=list, max_length=20)


MessageKind = Literal[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "template",
    "interactive",
    "reaction",
]

MessageTag = Literal[
    "HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"
]

#: Fields that carry a message's content besides `text`: with any of them, `type` must say
#: which kind of message this is.
_CONTENT_FIELDS = (
    "media",
    "location",
    "contacts",
    "template",
    "buttons",
    "list_button",
    "sections",
    "reaction_to",
    "emoji",
)


class MessageBody(InputModel):
    """What to send. `type` says which of the other fields is used; it may be left out only
    for plain text (`{"text": "…"}` is a text message)."""

    type: MessageKind = Field(
        description='The kind of message. Optional for plain text only: {"text": "…"}'
    )
    text: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    preview_url: bool = False
    media: MediaIn | None = None
    location: LocationIn | None = None
    contacts: list[dict[str, Any]] | None = Field(None, max_length=20)
    template: TemplateIn | None = None
    buttons: list[ButtonIn] = Field(default_factory=list, max_length=3)
    list_button: ShortText | None = None
    sections: list[SectionIn] = Field(default_factory=list, max_length=10)
    header: Annotated[str, StringConstraints(max_length=60)] | None = None
    footer: Annotated[str, StringConstraints(max_length=60)] | None = None
    reaction_to: Annotated[str, StringConstraints(max_length=200)] | None = None
    emoji: Annotated[str, StringConstraints(max_length=10)] | None = None
    reply_to: uuid.UUID | None = Field(None, description="Id of a message to answer")
    tag: MessageTag | None = Field(
        None,
        description="Messenger/Instagram message tag, to send outside the 24-hour window "
        "(HUMAN_AGENT: within 7 days; agent replies get it by themselves)",
    )

    @model_validator(mode="before")
    @classmethod
    def _plain_text_is_text(cls, data: Any) -> Any:
        """`{"text": "…"}` alone is a text message; anything richer must name its `type`
        (otherwise a 422 says `type` is required)."""
        plain = isinstance(data, dict) and "type" not in data and "text" in data
        if plain and not any(data.get(name) for name in _CONTENT_FIELDS):
            return {**data, "type": "text"}
        return data

    @model_validator(mode="after")
    def _fields_for_type(self) -> MessageBody:
        needs: dict[str, object] = {
            "text": self.text,
            "location": self.location,
            "contacts": self.contacts,
            "template": self.template,
            "reaction": self.reaction_to,
            "interactive": self.text and (self.buttons or self.sections),
        }
        if self.type in ("image", "video", "audio", "document", "sticker"):
            needs[self.type] = self.media
        if not needs.get(self.type):
            raise ValueError(f"a {self.type} message needs its fields (see the API docs)")
        return self


def _recipient(value: str) -> str:
    """A phone number (normalised), a Page- or Instagram-scoped id (16 to 20 digits, longer
    than any phone number), a Slack user id (U or W, then capitals and digits), or a Telegram
    chat id (a person's: digits; a group's: negative, kept as it is)."""
    if _GROUP_CHAT_ID.fullmatch(value):
        return value
    try:
        return normalize_phone(value)
    except ValueError:
        if _SCOPED_ID.fullmatch(value) or _SLACK_USER_ID.fullmatch(value):
            return value
        raise


_SCOPED_ID = re.compile(r"[0-9]{16,20}")
_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{8,20}")
_GROUP_CHAT_ID = re.compile(r"-[0-9]{1,20}")
Recipient = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_recipient),
    Field(
        description="WhatsApp: a phone number with its country code; Messenger/Instagram: "
        "the contact's Page- or Instagram-scoped id; Slack: the user id (U…); Telegram: the "
        "chat id (a user who started the bot, or a group: negative)"
    ),
]


class SendMessageIn(MessageBody):
    channel_id: uuid.UUID
    to: Recipient


class ReplyIn(MessageBody):
    note: bool = Field(False, description="An internal note: stored, never sent")


class MessageEditIn(InputModel):
    text: Annotated[str, StringConstraints(min_length=1, max_length=4096)] = Field(
        description="The message's new text"
    )


class MessageOut(BaseModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    channel_id: uuid.UUID
    direction: str
    type: str
    text: str | None
    content: dict[str, Any]
    is_note: bool
    status: str
    error_code: str | None
    error_title: str | None
    provider_message_id: str | None
    reply_to_provider_id: str | None
    media_status: str | None
    media_url: str | None = None
    edited: bool
    deleted: bool
    sender_user_id: uuid.UUID | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
