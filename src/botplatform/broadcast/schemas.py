from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from botplatform.kit.phone import PhoneNumber
from botplatform.kit.schemas import InputModel
from botplatform.message.schemas import TemplateIn

#: `{{name}}` in a template parameter or a text: a variable of the broadcast.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
LocalTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
MAX_LIST = 100_000

BroadcastStatus = Literal[
    "draft", "scheduled", "running", "paused", "completed", "cancelled", "failed"
]
RecipientStatus = Literal["queued", "sending", "sent", "delivered", "read", "failed", "skipped"]


class VariableIn(InputModel):
    """Where a variable's value comes from for each recipient: a contact attribute (`name`
    is the contact's name), else `default`. With neither, the recipient is skipped
    (`missing_variable`)."""

    attribute: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    default: Annotated[str, StringConstraints(max_length=1024)] | None = None


class BroadcastMessage(InputModel):
    """A WhatsApp template (name, language, components as the Graph API takes them), a
    free-form text (only where no 24-hour window applies, or inside it), or an email
    (`subject` and `text` and/or `html`, sent over SMTP to each contact's `email` attribute,
    with an unsubscribe link). `{{var}}` in a component parameter's text, in `text`, and in
    an email's `subject` and `html` is replaced per recipient (HTML-escaped in `html`)."""

    type: Literal["template", "text", "email"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None
    template: TemplateIn | None = None
    subject: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = None
    html: Annotated[str, StringConstraints(min_length=1, max_length=500_000)] | None = None
    variables: dict[str, VariableIn] = Field(default_factory=dict, max_length=50)

    @model_validator(mode="after")
    def _complete(self) -> BroadcastMessage:
        if self.type == "template" and self.template is None:
            raise ValueError("a template broadcast needs `template`")
        if self.type == "text" and not self.text:
            raise ValueError("a text broadcast needs `text`")
        if self.type == "text" and len(self.text or "") > 4096:
            raise ValueError("a text broadcast's `text` has at most 4096 characters")
        if self.type == "email" and not self.subject:
            raise ValueError("an email broadcast needs `subject`")
        if self.type == "email" and not (self.text or self.html):
            raise ValueError("an email broadcast needs `text` and/or `html`")
        if self.type != "email" and (self.subject or self.html):
            raise ValueError("`subject` and `html` are for email broadcasts only")
        unknown = sorted(placeholders(self) - set(self.variables))
        if unknown:
            raise ValueError(f"placeholders without a variable: {', '.join(unknown)}")
        return self


def placeholders(message: BroadcastMessage) -> set[str]:
    found = set(PLACEHOLDER.findall(message.text or ""))
    found |= set(PLACEHOLDER.findall(message.subject or ""))
    found |= set(PLACEHOLDER.findall(message.html or ""))
    if message.template is not None:
        found |= set(PLACEHOLDER.findall(str(message.template.components)))
    return found


class AudienceIn(InputModel):
    """Who receives it. `list`: contact ids and/or phone numbers uploaded with the broadcast
    (unknown numbers become contacts). `segment`: a saved segment (`segment_id`) or a
    segment definition given inline (`segment`, as `/segments` takes it); the definition is
    kept with the broadcast as it was when the broadcast was created. Opted-out contacts are
    always skipped. An email broadcast takes `contact_ids` or a segment (not `phones`)."""

    type: Literal["list", "segment"] = "list"
    contact_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_LIST)
    phones: list[PhoneNumber] = Field(default_factory=list, max_length=MAX_LIST)
    segment: dict[str, Any] | None = None
    segment_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _someone(self) -> AudienceIn:
        if self.type == "list" and not (self.contact_ids or self.phones):
            raise ValueError("a list audience needs `contact_ids` or `phones`")
        if self.type == "segment" and not (self.segment or self.segment_id):
            raise ValueError("a segment audience needs `segment_id` or `segment`")
        return self


class QuietHours(InputModel):
    """No sends between `start` and `end`, local time of each recipient (see docs/api.md
    for how the recipient's timezone is found); held recipients go out when it ends."""

    start: LocalTime
    end: LocalTime


class BroadcastCreate(InputModel):
    """`channel_id` is required for a template or text broadcast and must be absent for an
    email broadcast (email goes over the platform's SMTP server)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    channel_id: uuid.UUID | None = None
    message: BroadcastMessage
    audience: AudienceIn
    quiet_hours: QuietHours | None = None

    @model_validator(mode="after")
    def _channel(self) -> BroadcastCreate:
        if self.message.type == "email":
            if self.channel_id is not None:
                raise ValueError("an email broadcast has no `channel_id` (it goes over SMTP)")
            if self.audience.phones:
                raise ValueError("an email broadcast's audience takes `contact_ids` or a segment")
        elif self.channel_id is None:
            raise ValueError(f"a {self.message.type} broadcast needs `channel_id`")
        return self


class BroadcastStart(InputModel):
    """Empty (or no body): start now. `scheduled_at`: start then; a time without an offset
    is read in the workspace's timezone."""

    scheduled_at: datetime | None = None


class TestSendIn(InputModel):
    to: PhoneNumber


class BroadcastCounts(BaseModel):
    total: int
    queued: int
    sending: int
    sent: int
    delivered: int
    read: int
    failed: int
    skipped: int
    failed_by_code: dict[str, int]
    skipped_by_reason: dict[str, int]


class BroadcastOut(BaseModel):
    id: uuid.UUID
    name: str
    channel_id: uuid.UUID | None
    status: BroadcastStatus
    message: dict[str, Any]
    audience_type: str
    scheduled_at: datetime | None
    timezone: str
    quiet_hours: QuietHours | None
    waiting_reason: str | None
    throttled: int
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    counts: BroadcastCounts | None = None


class RecipientOut(BaseModel):
    id: uuid.UUID
    contact_id: uuid.UUID
    address: str | None
    status: RecipientStatus
    error_code: str | None
    error_title: str | None
    message_id: uuid.UUID | None
    attempts: int
    sent_at: datetime | None
    updated_at: datetime
