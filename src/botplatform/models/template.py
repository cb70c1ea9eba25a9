from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, WorkspaceScoped


class MessageTemplate(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A WhatsApp message template of one channel's business account, as Meta last told us
    (creation, sync, or its status / quality / category webhooks). `components` keeps Meta's
    own creation shape (HEADER, BODY, FOOTER, BUTTONS with their `example` values)."""

    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint("channel_id", "name", "language"),
        Index("ix_message_templates_workspace_id_created_at", "workspace_id", "created_at"),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )
    provider_template_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(15))
    category: Mapped[str] = mapped_column(String(20))
    # APPROVED | PENDING | REJECTED | PAUSED | DISABLED, or another status Meta reports
    # (IN_APPEAL, PENDING_DELETION, LIMIT_EXCEEDED...); DELETED once a sync no longer finds it.
    status: Mapped[str] = mapped_column(String(30), default="PENDING")
    rejected_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    quality_score: Mapped[str | None] = mapped_column(String(20), nullable=True)
    parameter_format: Mapped[str] = mapped_column(String(12), default="POSITIONAL")
    components: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
