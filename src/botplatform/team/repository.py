from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.permissions import Permission, Role, permissions_of
from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import Membership, Team, TeamMember

#: Roles that work conversations: the only ones a team hands conversations to.
AGENT_ROLES = tuple(
    role.value for role in Role if Permission.CONVERSATIONS_REPLY in permissions_of(role)
)


def team_not_found() -> NotFound:
    return NotFound("Team not found.", code="team_not_found")


def list_statement(workspace_id: uuid.UUID) -> Select[Any]:
    return scoped(Team, workspace_id)


async def get(db: AsyncSession, workspace_id: uuid.UUID, team_id: uuid.UUID) -> Team:
    found = (
        await db.execute(scoped(Team, workspace_id).where(Team.id == team_id))
    ).scalar_one_or_none()
    if found is None:
        raise team_not_found()
    return found


async def find_by_name(db: AsyncSession, workspace_id: uuid.UUID, name: str) -> Team | None:
    statement = scoped(Team, workspace_id).where(Team.name == name)
    return (await db.execute(statement)).scalar_one_or_none()


async def members(
    db: AsyncSession, workspace_id: uuid.UUID, team_id: uuid.UUID
) -> list[TeamMember]:
    statement = (
        scoped(TeamMember, workspace_id)
        .where(TeamMember.team_id == team_id)
        .order_by(TeamMember.created_at, TeamMember.user_id)
    )
    return list((await db.execute(statement)).scalars())


async def member_roles(
    db: AsyncSession, workspace_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The workspace role of each of these users who is a member."""
    if not user_ids:
        return {}
    statement = (
        scoped(Membership, workspace_id)
        .where(Membership.user_id.in_(user_ids))
        .with_only_columns(Membership.user_id, Membership.role)
    )
    rows = (await db.execute(statement)).all()
    return {row[0]: row[1] for row in rows}


def next_in_line(workspace_id: uuid.UUID, team_id: uuid.UUID) -> Select[Any]:
    """The team member picked least recently (never picked first), who is still a member
    of the workspace in a role that works conversations."""
    return (
        scoped(TeamMember, workspace_id)
        .join(
            Membership,
            (Membership.user_id == TeamMember.user_id)
            & (Membership.workspace_id == TeamMember.workspace_id),
        )
        .where(TeamMember.team_id == team_id, Membership.role.in_(AGENT_ROLES))
        .order_by(TeamMember.last_pick, TeamMember.created_at, TeamMember.user_id)
        .limit(1)
    )
