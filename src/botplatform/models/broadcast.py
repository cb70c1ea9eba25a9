from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, WorkspaceScoped


class Broadcast(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """One message to many contacts through one channel. The recipient rows are the truth
    of its progress; the columns here say what to send, to whom, when, and how far the
    materialisation of the audience got (`cursor`)."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_status_next_run_at", "status", "next_run_at"),)

    # None for an email broadcast (sent over SMTP, no channel).
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), index=True, nullable=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # draft | scheduled | running | paused | completed | cancelled | failed
    status: Mapped[str] = mapped_column(String(20), default="draft")
    message: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    quiet_start: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "21:00"
    quiet_end: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "08:00"
    # Materialisation: the audience's position reached (None: not started), and done.
    cursor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    materialised: Mapped[bool] = mapped_column(default=False)
    total: Mapped[int] = mapped_column(Integer, default=0)
    # The one driver of the sending: a lease (fencing token) renewed while it runs.
    driver_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the scheduler tick should (re)start the driver (scheduled start, tier window).
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    waiting_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)
    throttled: Mapped[int] = mapped_column(Integer, default=0)  # provider throttling answers
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


class BroadcastRecipient(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """One contact of one broadcast, at most once (the unique key). `message_id` is set in
    the same transaction as the message row is inserted with its send marker: a recipient
    with it is never claimed again (broadcast/engine.py)."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "contact_id"),
        Index("ix_broadcast_recipients_broadcast_id_status", "broadcast_id", "status"),
        # The messaging-limit tier: unique users reached per channel in a rolling 24 hours.
        Index("ix_broadcast_recipients_channel_id_sent_at", "channel_id", "sent_at"),
    )

    broadcast_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("broadcasts.id", ondelete="CASCADE")
    )
    # The broadcast's, for the tier; None for an email broadcast.
    channel_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("contacts.id", ondelete="CASCADE")
    )
    # e.g. the wa_id; for an email broadcast the email address
    address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # queued | sending | sent | delivered | read | failed | skipped
    status: Mapped[str] = mapped_column(String(20), default="queued")
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    error_title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The message row (for an email broadcast: its row in `emails`), the send marker.
    message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
