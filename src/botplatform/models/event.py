from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.kit.clock import utcnow
from botplatform.models.base import Base, IdMixin, UTCDateTime, WorkspaceScoped


class Event(IdMixin, WorkspaceScoped, Base):
    """A domain event as it happened (`message.received`, …): the one payload that every
    webhook delivery and every live dashboard receives. Immutable once written."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_workspace_id_created_at", "workspace_id", "created_at"),)

    type: Mapped[str] = mapped_column(String(60))
    version: Mapped[int] = mapped_column(Integer, default=1)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
