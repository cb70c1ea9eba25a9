from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime


class Workspace(IdMixin, TimestampMixin, Base):
    """The tenant. Every tenant row points here through `workspace_id`."""

    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    plan: Mapped[str] = mapped_column(String(20), default="starter")
    # Set by an owner: members without 2FA are refused on this workspace's routes.
    require_2fa: Mapped[bool] = mapped_column(Boolean, default=False)
    # A deleted workspace disappears for everyone at once; its rows are purged after the
    # grace period (SPEC §8) by the privacy jobs.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Business hours: an IANA time zone and, per weekday ("mon".."sun"), a list of
    # ["HH:MM", "HH:MM"] ranges; no entry for a day means closed all day.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    business_hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
