"""Platform-wide reads for the superadmin panel. Cross-tenant by purpose: callers enter the
system scope first (`kit.scoping.enter_system`) after checking the caller is a superadmin."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.models import DeadJob, Membership, User, Workspace

LIMIT = 200


async def workspaces(db: AsyncSession) -> list[tuple[Workspace, int]]:
    """Every workspace (deleted ones too, marked), newest first, with its member count."""
    members = (
        select(Membership.workspace_id, func.count().label("members"))
        .group_by(Membership.workspace_id)
        .subquery()
    )
    statement = (
        select(Workspace, func.coalesce(members.c.members, 0))
        .outerjoin(members, members.c.workspace_id == Workspace.id)
        .order_by(Workspace.created_at.desc())
        .limit(LIMIT)
    )
    return [(row[0], int(row[1])) for row in (await db.execute(statement)).all()]


async def users(db: AsyncSession, search: str | None) -> list[tuple[User, int]]:
    """Users, newest first, with how many workspaces each belongs to."""
    memberships = (
        select(Membership.user_id, func.count().label("workspaces"))
        .group_by(Membership.user_id)
        .subquery()
    )
    statement: Any = select(User, func.coalesce(memberships.c.workspaces, 0)).outerjoin(
        memberships, memberships.c.user_id == User.id
    )
    if search:
        statement = statement.where(User.email.ilike(f"%{search.strip().lower()}%"))
    statement = statement.order_by(User.created_at.desc()).limit(LIMIT)
    return [(row[0], int(row[1])) for row in (await db.execute(statement)).all()]


async def dead_jobs(db: AsyncSession, limit: int = 100) -> list[DeadJob]:
    statement = select(DeadJob).order_by(DeadJob.failed_at.desc()).limit(limit)
    return list((await db.execute(statement)).scalars())
