from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, WorkspaceScoped


class AiIntentModel(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """One training run of a workspace's intent classifier: a numbered version that is never
    changed once trained. `dataset` is the snapshot of intents it was asked to learn (so the
    job is repeatable), `artifact` the fitted parameters as plain JSON (never pickle), and
    `accuracy` its score on the held-out split. At most one version per workspace is active."""

    __tablename__ = "ai_intent_models"
    __table_args__ = (UniqueConstraint("workspace_id", "version"),)

    version: Mapped[int] = mapped_column(Integer)
    # queued → training → ready | failed
    status: Mapped[str] = mapped_column(String(20), default="queued")
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    dataset: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    artifact: Mapped[str | None] = mapped_column(Text, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    trained_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
