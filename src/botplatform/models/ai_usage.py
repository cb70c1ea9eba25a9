from __future__ import annotations

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, WorkspaceScoped


class AiUsage(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """One call to the language model on a workspace's behalf: the meter. A call that fell
    back (timeout, provider error, quota) is recorded too, with the tokens it actually used."""

    __tablename__ = "ai_usage"
    __table_args__ = (Index("ix_ai_usage_workspace_id_created_at", "workspace_id", "created_at"),)

    kind: Mapped[str] = mapped_column(String(20), default="answer")
    model: Mapped[str] = mapped_column(String(100))
    # ok | timeout | provider_error | not_configured | quota_exceeded
    outcome: Mapped[str] = mapped_column(String(20))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
