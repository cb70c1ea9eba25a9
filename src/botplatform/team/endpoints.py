from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import MembersManage, MembersRead
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import Team
from botplatform.team import repository, service
from botplatform.team.schemas import TeamCreate, TeamOut, TeamUpdate

router = APIRouter(prefix="/workspaces/{ws}", tags=["teams"])


@router.get("/teams")
async def list_teams(
    access: MembersRead, db: DbSession, page: PageQuery
) -> Envelope[Page[TeamOut]]:
    statement = repository.list_statement(access.workspace_id)
    rows, cursor = await paginate(db, statement, Team.created_at, Team.id, page)
    return ok(Page(items=[await service.to_out(db, r[0]) for r in rows], next_cursor=cursor))


@router.post("/teams", status_code=status.HTTP_201_CREATED)
async def create_team(
    access: MembersManage, body: TeamCreate, db: DbSession, audit: Audit
) -> Envelope[TeamOut]:
    """A team of agents; automation rules can assign conversations to it round-robin."""
    team = await service.create(db, access.workspace_id, body)
    await audit.log(
        "team.create",
        workspace_id=access.workspace_id,
        target_type="team",
        target_id=team.id,
        changes={"name": team.name, "member_ids": [str(u) for u in body.member_ids]},
    )
    return ok(await service.to_out(db, team), "Team created")


@router.get("/teams/{team_id}")
async def get_team(access: MembersRead, team_id: uuid.UUID, db: DbSession) -> Envelope[TeamOut]:
    team = await repository.get(db, access.workspace_id, team_id)
    return ok(await service.to_out(db, team))


@router.patch("/teams/{team_id}")
async def update_team(
    access: MembersManage, team_id: uuid.UUID, body: TeamUpdate, db: DbSession, audit: Audit
) -> Envelope[TeamOut]:
    team = await repository.get(db, access.workspace_id, team_id)
    changes = await service.update_team(db, team, body)
    await audit.log(
        "team.update",
        workspace_id=access.workspace_id,
        target_type="team",
        target_id=team.id,
        changes=changes,
    )
    return ok(await service.to_out(db, team), "Team updated")


@router.delete("/teams/{team_id}")
async def delete_team(
    access: MembersManage, team_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[None]:
    """Deletes the team; its conversations keep their assignee and lose the team."""
    team = await repository.get(db, access.workspace_id, team_id)
    await service.delete_team(db, team)
    await audit.log(
        "team.delete", workspace_id=access.workspace_id, target_type="team", target_id=team_id
    )
    return ok(None, "Team deleted")
