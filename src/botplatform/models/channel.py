from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.kit.crypto import EncryptedText
from botplatform.models.base import Base, IdMixin, TimestampMixin, WorkspaceScoped


class Channel(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A connected messaging account (a WhatsApp phone number, a Telegram bot, …). `config`
    holds what is not secret; each secret has its own encrypted column."""

    __tablename__ = "channels"

    provider: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | disabled
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    access_token: Mapped[str | None] = mapped_column(EncryptedText, nullable=True)
    app_secret: Mapped[str | None] = mapped_column(EncryptedText, nullable=True)
    verify_token: Mapped[str | None] = mapped_column(EncryptedText, nullable=True)
    send_rate_per_second: Mapped[int] = mapped_column(Integer, default=80)
