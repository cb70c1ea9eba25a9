from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, WorkspaceScoped


class KnowledgeEntry(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A FAQ / knowledge entry of a workspace: what generated answers are grounded on."""

    __tablename__ = "knowledge_entries"

    question: Mapped[str] = mapped_column(String(500))
    answer: Mapped[str] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text, nullable=True)
