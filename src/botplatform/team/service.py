"""Teams, their members, and round-robin assignment. Flushes, never commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import Conflict, Unprocessable
from botplatform.models import Conversation, Team, TeamMember
from botplatform.team import repository
from botplatform.team.schemas import TeamCreate, TeamOut, TeamUpdate


class TeamEmpty(Unprocessable):
    code = "team_empty"
    message = "The team has no members to assign to."


async def to_out(db: AsyncSession, team: Team) -> TeamOut:
    members = await repository.members(db, team.workspace_id, team.id)
    return TeamOut(
        id=team.id,
        name=team.name,
        description=team.description,
        member_ids=[m.user_id for m in members],
        created_at=team.created_at,
    )


async def _check_members(db: AsyncSession, workspace_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
    roles = await repository.member_roles(db, workspace_id, ids)
    bad = []
    for index, user_id in enumerate(ids):
        field = f"body.member_ids.{index}"
        if user_id not in roles:
            bad.append({"field": field, "message": "not a member", "type": "unknown_member"})
        elif roles[user_id] not in repository.AGENT_ROLES:
            message = f"a {roles[user_id]} cannot work conversations"
            bad.append({"field": field, "message": message, "type": "not_an_agent"})
    if bad:
        raise Unprocessable(
            "Every team member must be a workspace member who works conversations.",
            code="invalid_members",
            details=bad,
        )


async def _check_name(db: AsyncSession, team: Team | None, ws: uuid.UUID, name: str) -> None:
    found = await repository.find_by_name(db, ws, name)
    if found is not None and (team is None or found.id != team.id):
        raise Conflict("A team with this name already exists.", code="team_exists")


async def _set_members(db: AsyncSession, team: Team, user_ids: list[uuid.UUID]) -> None:
    wanted = list(dict.fromkeys(user_ids))
    current = {m.user_id: m for m in await repository.members(db, team.workspace_id, team.id)}
    for user_id, member in current.items():
        if user_id not in wanted:
            await db.delete(member)
    for user_id in wanted:
        if user_id not in current:
            db.add(
                TeamMember(
                    workspace_id=team.workspace_id, team_id=team.id, user_id=user_id, last_pick=0
                )
            )
    await db.flush()


async def create(db: AsyncSession, workspace_id: uuid.UUID, data: TeamCreate) -> Team:
    await _check_name(db, None, workspace_id, data.name)
    await _check_members(db, workspace_id, data.member_ids)
    team = Team(
        workspace_id=workspace_id, name=data.name, description=data.description, assignments=0
    )
    db.add(team)
    await db.flush()
    await _set_members(db, team, data.member_ids)
    return team


async def update_team(db: AsyncSession, team: Team, data: TeamUpdate) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if data.name is not None and data.name != team.name:
        await _check_name(db, team, team.workspace_id, data.name)
        changes["name"] = {"before": team.name, "after": data.name}
        team.name = data.name
    if data.description is not None and data.description != team.description:
        changes["description"] = {"before": team.description, "after": data.description}
        team.description = data.description
    if data.member_ids is not None:
        await _check_members(db, team.workspace_id, data.member_ids)
        before = [str(m.user_id) for m in await repository.members(db, team.workspace_id, team.id)]
        await _set_members(db, team, data.member_ids)
        after = [str(u) for u in dict.fromkeys(data.member_ids)]
        if sorted(before) != sorted(after):
            changes["member_ids"] = {"before": before, "after": after}
    await db.flush()
    return changes


async def delete_team(db: AsyncSession, team: Team) -> None:
    await db.execute(
        update(Conversation)
        .where(Conversation.workspace_id == team.workspace_id, Conversation.team_id == team.id)
        .values(team_id=None)
    )
    await db.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    await db.delete(team)
    await db.flush()


async def pick_round_robin(
    db: AsyncSession, workspace_id: uuid.UUID, team_id: uuid.UUID
) -> uuid.UUID:
    """The next agent of the team, fair under concurrency: bumping the team's counter with one
    UPDATE locks its row until this transaction ends (PostgreSQL; SQLite serialises writers),
    so two concurrent picks see each other's choice and never pick the same person twice in
    a row. The member picked least recently goes next (a new member first)."""
    bumped = await db.execute(
        update(Team)
        .where(Team.workspace_id == workspace_id, Team.id == team_id)
        .values(assignments=Team.assignments + 1)
    )
    if getattr(bumped, "rowcount", 0) != 1:
        raise repository.team_not_found()
    counter = (await db.execute(select(Team.assignments).where(Team.id == team_id))).scalar_one()
    statement = repository.next_in_line(workspace_id, team_id).execution_options(
        populate_existing=True
    )
    member = (await db.execute(statement)).scalar_one_or_none()
    if member is None:
        raise TeamEmpty()
    member.last_pick = counter
    await db.flush()
    picked: uuid.UUID = member.user_id
    return picked
