"""Analytics: the conversation cycles the figures are counted from, and the derived rollups.

A conversation is one thread per contact and channel (a Slack thread is one of its own) for
ever; a *cycle* is one stretch of it from a customer's message (opened, or reopened after a
resolve) to its resolve. The conversation row only knows its current status; the cycles
keep the history the figures need (when opened, reopened, resolved; which bot had it and
how it ended)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, WorkspaceScoped

#: A cycle whose stored durations are missing or out of date (never derived, or resolved
#: since): the same condition as `analytics.repository._stale`, so the index serves it.
STALE = "facts_at IS NULL OR (resolved_at IS NOT NULL AND resolution_seconds IS NULL)"


class ConversationCycle(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """One open → resolved stretch of a conversation. At most one is open per conversation
    (the partial unique index), so two batches reopening it at once make one cycle."""

    __tablename__ = "conversation_cycles"
    __table_args__ = (
        Index("ix_conversation_cycles_workspace_id_opened_at", "workspace_id", "opened_at"),
        Index("ix_conversation_cycles_workspace_id_updated_at", "workspace_id", "updated_at"),
        # The few cycles whose durations a read derives itself (see analytics.repository).
        Index(
            "ix_conversation_cycles_stale",
            "workspace_id",
            "opened_at",
            sqlite_where=text(STALE),
            postgresql_where=text(STALE),
        ),
        Index(
            "ix_conversation_cycles_open_conversation_id",
            "conversation_id",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reopened: Mapped[bool] = mapped_column(Boolean, default=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The bot that had the cycle, and how its run ended: completed | handoff | None (dropped
    # off at `bot_node_id`, or still running).
    bot_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    bot_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    bot_outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    bot_node_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Derived by the rollup job from the messages (None until known): the first reply after
    # `opened_at`, who wrote it (None: the bot or an automation), and the durations, in
    # wall-clock and business-hours seconds.
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_responder_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    first_response_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    first_response_business_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    resolution_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    resolution_business_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # When the durations were last derived (None: never; a read derives them itself).
    facts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AnalyticsDaily(IdMixin, WorkspaceScoped, Base):
    """One count of one closed day (the workspace's local date): `metric` for `channel_id`
    (None: not tied to a channel) and `key` (a message type, an agent, an outcome…).
    Derived: a day's rows are deleted and written again whole, so re-running is idempotent."""

    __tablename__ = "analytics_daily"
    __table_args__ = (Index("ix_analytics_daily_workspace_id_day", "workspace_id", "day"),)

    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    metric: Mapped[str] = mapped_column(String(40))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    key: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class AnalyticsWatermark(IdMixin, WorkspaceScoped, Base):
    """How far the rollup job has looked at a workspace's rows: rows changed after
    `checked_at` mark their days to aggregate again."""

    __tablename__ = "analytics_watermarks"
    __table_args__ = (UniqueConstraint("workspace_id"),)

    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
