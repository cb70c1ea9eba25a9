from __future__ import annotations

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, WorkspaceScoped


class AiIntent(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """One intent a workspace's bots can recognise, with the example phrases it is trained
    from. Editing an intent changes nothing live until the next training run."""

    __tablename__ = "ai_intents"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    examples: Mapped[list[str]] = mapped_column(JSON, default=list)
