from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from botplatform.conversation.schemas import ContactOut
from botplatform.message.schemas import MessageOut


class MediaRef(BaseModel):
    """A stored file one of the contact's messages carries; `url` is short-lived."""

    message_id: uuid.UUID
    key: str
    mime: str | None
    status: str | None
    url: str | None


class ConversationExport(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    status: str
    assignee_id: uuid.UUID | None
    team_id: uuid.UUID | None
    labels: list[str]
    last_inbound_at: datetime | None
    last_message_at: datetime | None
    created_at: datetime
    messages: list[MessageOut]  # oldest first, internal notes included


class ContactExport(BaseModel):
    """Everything the workspace holds about one contact."""

    exported_at: datetime
    workspace_id: uuid.UUID
    contact: ContactOut  # with its channel identities and consent ledger
    conversations: list[ConversationExport]
    media: list[MediaRef]


class ErasureOut(BaseModel):
    contact_id: uuid.UUID
    erased: dict[str, int]  # rows removed, per table
    media_files: int  # stored files queued for removal (those no other message uses)
