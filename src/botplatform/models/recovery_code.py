from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime


class RecoveryCode(IdMixin, TimestampMixin, Base):
    """A one-time 2FA recovery code, stored as a SHA-256 hash (the codes are random)."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
