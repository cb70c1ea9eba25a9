from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, WorkspaceScoped


class Message(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """One message, either way, in the normalized model. An outbound message is a row first
    (`queued`), then a job; the row's `status` is the truth, so a send happens once."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "provider_message_id"),
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_messages_conversation_id_created_at", "conversation_id", "created_at"),
        Index("ix_messages_status_updated_at", "status", "updated_at"),
        # The retention job walks a workspace's oldest messages first.
        Index("ix_messages_workspace_id_created_at", "workspace_id", "created_at"),
        # The analytics rollup finds the days that late status webhooks changed.
        Index("ix_messages_workspace_id_updated_at", "workspace_id", "updated_at"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE")
    )
    direction: Mapped[str] = mapped_column(String(10))  # inbound | outbound
    type: Mapped[str] = mapped_column(String(20))
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the full payload
    is_note: Mapped[bool] = mapped_column(Boolean, default=False)  # internal, never sent
    provider_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reply_to_provider_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="received")
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    error_title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Committed just before the provider request leaves, cleared when its outcome is written:
    # a leased row without it provably never left and may be sent again; a row with it is
    # never re-sent automatically (channels/delivery.py).
    send_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sender_user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    media_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    media_mime: Mapped[str | None] = mapped_column(String(100), nullable=True)
    media_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
