from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, UTCDateTime


class DeadJob(IdMixin, TimestampMixin, Base):
    """A job that exhausted its retries. Platform-level (not a tenant table): operators see
    and retry these with `botplatform queue …`."""

    __tablename__ = "dead_jobs"

    job: Mapped[str] = mapped_column(String(100), index=True)
    queue: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSON)
    message_id: Mapped[str] = mapped_column(String(64))
    last_error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    first_enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set by `queue retry-dead`; the job is sent again by the CLI (Redis) or the sweeper.
    retry_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
