from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, UniqueConstraint, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, WorkspaceScoped


class Contact(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A person the workspace talks to; one person may have several channel identities."""

    __tablename__ = "contacts"
    # Audiences walk a workspace's contacts in id order (`segment.service.iter_contact_ids`).
    __table_args__ = (Index("ix_contacts_workspace_id_id", "workspace_id", "id"),)

    name: Mapped[str] = mapped_column(String(200), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Opted out of everything (a STOP keyword, the API, an agent): no channel, no email.
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # Opted out of marketing email only (its unsubscribe link); WhatsApp is unaffected.
    email_opted_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ContactIdentity(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """The contact's id on one provider (WhatsApp: the wa_id, i.e. the phone number)."""

    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("workspace_id", "provider", "external_id"),)

    contact_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(100))
    profile_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: Messenger/Instagram: the profile picture read from the Graph API, and when it was read.
    profile_picture_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    profile_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Telegram: the avatar, downloaded once by us into media storage (its provider URL
    #: carries the bot token, so it is never kept). None: not tried yet; "": tried, nothing
    #: to show (no photo, or the download failed); else the media key the API signs a link to.
    profile_picture_key: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class ConsentEvent(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """The consent ledger: every opt-out and opt-in, with where it came from."""

    __tablename__ = "consent_events"

    contact_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(20))  # opt_out | opt_in
    # keyword | api | agent | import | email_unsubscribe
    source: Mapped[str] = mapped_column(String(30))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="SET NULL"), nullable=True
    )
    detail: Mapped[str | None] = mapped_column(String(500), nullable=True)
