"""Every query of the workspace domain. The workspace is the tenant itself, so it is read by
its id joined to the caller's membership; deleted workspaces are invisible."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import Membership, Workspace


def workspace_not_found() -> NotFound:
    return NotFound("Workspace not found.", code="workspace_not_found")


async def get_with_membership(
    db: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Workspace, Membership] | None:
    statement = (
        scoped(Membership, workspace_id)
        .where(Membership.user_id == user_id)
        .join(Workspace, Workspace.id == Membership.workspace_id)
        .where(Workspace.deleted_at.is_(None))
        .add_columns(Workspace)
    )
    row = (await db.execute(statement)).first()
    return None if row is None else (row[1], row[0])


async def list_for_user(
    db: AsyncSession, user_id: uuid.UUID
) -> Sequence[tuple[Workspace, Membership]]:
    statement = (
        select(Workspace, Membership)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.user_id == user_id, Workspace.deleted_at.is_(None))
        .order_by(Workspace.created_at, Workspace.id)
    )
    return [(w, m) for w, m in (await db.execute(statement)).all()]


async def slug_taken(db: AsyncSession, slug: str, except_id: uuid.UUID | None = None) -> bool:
    statement = select(Workspace.id).where(Workspace.slug == slug)
    if except_id is not None:
        statement = statement.where(Workspace.id != except_id)
    return (await db.execute(statement.limit(1))).first() is not None
