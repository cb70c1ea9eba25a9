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
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, WorkspaceScoped


class Bot(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A bot: the flow being edited (`flow`, validated on every save) and, once published,
    the version new conversations start on. `channel_ids` empty = every channel."""

    __tablename__ = "bots"

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    channel_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    flow: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    draft_revision: Mapped[int] = mapped_column(Integer, default=1)
    # Minutes without an agent's message after which a handed-off conversation returns to
    # the bot; None = the platform default (BOT_HANDOFF_IDLE_MINUTES), 0 = never.
    handoff_idle_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # No foreign key (versions point at their bot; a cycle would tangle deletes): versions
    # are only ever deleted with their bot.
    published_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class BotVersion(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A published flow: immutable (no route changes it, and the ORM refuses an update), so
    a conversation that started on it finishes on it."""

    __tablename__ = "bot_versions"
    __table_args__ = (UniqueConstraint("bot_id", "number"),)

    bot_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("bots.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    flow: Mapped[dict[str, Any]] = mapped_column(JSON)
    draft_revision: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(500), default="")
    published_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


@event.listens_for(BotVersion, "before_update")
def _versions_are_immutable(*_: Any) -> None:
    raise ValueError("a published bot version is immutable")


class BotSession(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A conversation's bot state: which bot and version it runs on, where it stands, its
    variables, and whether a human has taken over. One row per conversation."""

    __tablename__ = "bot_sessions"
    __table_args__ = (
        UniqueConstraint("conversation_id"),
        Index("ix_bot_sessions_waiting_resume_at", "waiting", "resume_at"),
        Index("ix_bot_sessions_status_human_at", "status", "human_at"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    bot_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("bots.id", ondelete="SET NULL"), nullable=True
    )
    version_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("bot_versions.id", ondelete="SET NULL"), nullable=True
    )
    # idle (no run) | running (waiting for something) | finished | handoff (a human has it)
    status: Mapped[str] = mapped_column(String(20), default="idle")
    node_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    waiting: Mapped[str | None] = mapped_column(String(20), nullable=True)  # input|delay|external
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped on every move: a resume job carries it and does nothing if the run moved on.
    step: Mapped[int] = mapped_column(Integer, default=0)
    resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    handoff_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    human_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_input: Mapped[str | None] = mapped_column(Text, nullable=True)  # {{input.text}}
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
