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


class AutomationRule(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """When `event` happens and `conditions` hold, run `actions` in order. Conditions and
    actions are JSON validated on save (`automation.schemas`)."""

    __tablename__ = "automation_rules"
    __table_args__ = (Index("ix_automation_rules_workspace_id_event", "workspace_id", "event"),)

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    event: Mapped[str] = mapped_column(String(40))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # lower runs first
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


class AutomationEvent(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """Something rules may react to, stored in the transaction that caused it; its job
    evaluates the rules once (`status` pending → processed). `chain` lists the rules whose
    actions caused it: the loop guard."""

    __tablename__ = "automation_events"
    __table_args__ = (Index("ix_automation_events_status_updated_at", "status", "updated_at"),)

    event: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=True
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=True
    )
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), nullable=True
    )
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), nullable=True
    )
    chain: Mapped[list[str]] = mapped_column(JSON, default=list)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AutomationRun(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """One rule evaluated against one event: whether it matched, and each action's outcome."""

    __tablename__ = "automation_runs"
    __table_args__ = (
        UniqueConstraint("event_id", "rule_id"),
        Index("ix_automation_runs_rule_id_created_at", "rule_id", "created_at"),
    )

    rule_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("automation_rules.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("automation_events.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(40))
    matched: Mapped[bool] = mapped_column(Boolean, default=False)
    # not_matched | skipped (loop guard) | succeeded | failed (at least one action failed)
    outcome: Mapped[str] = mapped_column(String(20))
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
