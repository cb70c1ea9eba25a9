from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from botplatform.models.base import Base, IdMixin, TimestampMixin, WorkspaceScoped


class Team(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A group of agents conversations can be routed to. `assignments` counts round-robin
    picks; bumping it is what serialises two concurrent picks on the same team."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    assignments: Mapped[int] = mapped_column(Integer, default=0)


class TeamMember(IdMixin, TimestampMixin, WorkspaceScoped, Base):
    """A user in a team. `last_pick` is the team's `assignments` value when this member was
    last picked (0: never): the member with the lowest goes next."""

    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)

    team_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    last_pick: Mapped[int] = mapped_column(Integer, default=0)
