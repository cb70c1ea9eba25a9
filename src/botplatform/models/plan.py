from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, TimestampMixin


class Plan(TimestampMixin, Base):
    """A plan and its quotas: a platform (system) table, not a tenant's. `workspaces.plan`
    holds the plan's name. Every quota may be NULL, meaning unlimited."""

    __tablename__ = "plans"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    # Listing order, cheapest first.
    position: Mapped[int] = mapped_column(Integer, default=0)
    messages_per_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channels: Mapped[int | None] = mapped_column(Integer, nullable=True)
    members: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bots: Mapped[int | None] = mapped_column(Integer, nullable=True)
    broadcasts_per_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recipients_per_broadcast: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Recipients of all the month's broadcasts together (counted when each starts).
    recipients_per_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ai_tokens_per_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    api_requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The longest message retention a workspace on this plan may choose.
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
