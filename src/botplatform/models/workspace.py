from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String
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
    # Branding (SPEC §8): shown on the login page of the workspace's own host and to its
    # widget. Colours are "#rrggbb" (None: the platform's); the logo is a stored object.
    brand_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    brand_primary_color: Mapped[str | None] = mapped_column(String(7), nullable=True)
    brand_background_color: Mapped[str | None] = mapped_column(String(7), nullable=True)
    brand_text_color: Mapped[str | None] = mapped_column(String(7), nullable=True)
    logo_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    logo_mime: Mapped[str | None] = mapped_column(String(50), nullable=True)
    # A host name the workspace claims (Host → workspace); one workspace per name.
    custom_domain: Mapped[str | None] = mapped_column(String(253), nullable=True, unique=True)
    # Retention: messages older than this many days are deleted by a scheduled job (None:
    # kept forever); archived first as gzipped JSON lines when `archive_before_delete`.
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    archive_before_delete: Mapped[bool] = mapped_column(Boolean, default=False)
