from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, WorkspaceScoped


class Conversation(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """The thread between a contact and a channel. `last_inbound_at` drives WhatsApp's
    24-hour customer-service window.

    `thread_key` tells a contact's conversations on one channel apart where the channel has
    threads (Slack: a thread is a conversation, keyed by its root message's provider id);
    "" is the contact's one conversation everywhere else. Empty rather than NULL: a unique
    key treats NULLs as distinct on both databases, and the batch path's
    `ON CONFLICT (channel_id, contact_id, thread_key)` needs one plain key to meet."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel_id", "contact_id", "thread_key"),
        Index("ix_conversations_workspace_id_last_message_at", "workspace_id", "last_message_at"),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE")
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    thread_key: Mapped[str] = mapped_column(String(200), default="", server_default="")
    status: Mapped[str] = mapped_column(String(20), default="open")  # bot|open|pending|resolved
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unread_count: Mapped[int] = mapped_column(Integer, default=0)
    # No foreign key (adding one to this table would rebuild it on SQLite): deleting a team
    # clears it here in the team service.
    team_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
