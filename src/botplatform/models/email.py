from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime


class Email(IdMixin, TimestampMixin, Base):
    """The platform's outbox (not a tenant table): an email is a row first, then a job. The
    row's status is the truth; the sweeper re-enqueues rows left `queued` too long, and a sent
    row is never sent again."""

    __tablename__ = "emails"
    __table_args__ = (Index("ix_emails_status_updated_at", "status", "updated_at"),)

    kind: Mapped[str] = mapped_column(String(50))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    # queued → sending (leased to one worker until lease_until) → sent | failed
    status: Mapped[str] = mapped_column(String(20), default="queued")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
