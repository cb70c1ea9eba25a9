from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.kit.clock import utcnow
from botplatform.models.base import Base, IdMixin, UTCDateTime, WorkspaceScoped


class UsageCounter(IdMixin, WorkspaceScoped, Base):
    """What one workspace used in one calendar month (UTC), `period` = "YYYY-MM". Only ever
    changed by one upsert statement (`usage.repository`), so concurrent increments add up."""

    __tablename__ = "usage_counters"
    __table_args__ = (UniqueConstraint("workspace_id", "period"),)

    period: Mapped[str] = mapped_column(String(7))
    messages_inbound: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    messages_outbound: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    ai_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    broadcasts: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    broadcast_recipients: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
