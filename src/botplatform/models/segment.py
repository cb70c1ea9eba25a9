from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, WorkspaceScoped


class Segment(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A saved audience: a filter over the workspace's contacts (`segment.filters` is its
    language). Opted-out contacts are never in a segment, whatever the filter says."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
