from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from botplatform.kit.schemas import InputModel
from botplatform.media.storage import SignedMediaUrls
from botplatform.models import ContactIdentity


class IdentityOut(BaseModel):
    provider: str
    external_id: str
    profile_name: str | None
    profile_picture_url: str | None = None

    @classmethod
    def of(cls, identity: ContactIdentity, urls: SignedMediaUrls) -> IdentityOut:
        """An identity as the API shows it: an avatar we stored (Telegram's) as a
        short-lived link to our copy, for this reader."""
        out = cls.model_validate(identity, from_attributes=True)
        if identity.profile_picture_key:
            out.profile_picture_url = urls.url_for(identity.profile_picture_key)
        return out


class ConsentOut(BaseModel):
    action: str
    source: str
    detail: str | None
    created_at: datetime


class ContactOut(BaseModel):
    id: uuid.UUID
    name: str
    attributes: dict[str, Any]
    tags: list[str]
    opted_out: bool
    email_opted_out: bool = Field(
        False, description="Unsubscribed from marketing email (its unsubscribe link)"
    )
    handle: str | None = Field(None, description="Phone number (+digits) or handle")
    identities: list[IdentityOut] = []
    consent: list[ConsentOut] = []
    created_at: datetime


class ConversationOut(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    contact_id: uuid.UUID
    contact_name: str
    contact_handle: str | None = Field(
        None, description="The contact's phone number (+digits) or handle"
    )
    status: str
    assignee_id: uuid.UUID | None
    unread_count: int
    last_inbound_at: datetime | None
    last_message_at: datetime | None
    window_open: bool
    created_at: datetime
    team_id: uuid.UUID | None = None
    labels: list[str] = []
    thread: str | None = Field(
        None,
        description="Slack: the thread this conversation is (its root message's id, "
        "`channel:ts`), where replies go; null for a contact's one conversation on a channel",
    )


Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
ConversationStatus = Literal["bot", "open", "pending", "resolved"]


class ConversationUpdate(InputModel):
    status: ConversationStatus | None = None
    assignee_id: uuid.UUID | None = None
    unassign: bool = False
    mark_read: bool = False
    labels: list[Label] | None = Field(None, max_length=50, description="Replaces the labels")


class MergeIn(InputModel):
    contact_id: uuid.UUID = Field(description="The contact merged into this one, then deleted")
