from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.permissions import Role
from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import Membership, User


def member_not_found() -> NotFound:
    return NotFound("Member not found.", code="member_not_found")


def members_with_users(workspace_id: uuid.UUID) -> Select[Any]:
    return (
        scoped(Membership, workspace_id).join(User, User.id == Membership.user_id).add_columns(User)
    )


async def get(
    db: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Membership, User]:
    statement = members_with_users(workspace_id).where(Membership.user_id == user_id)
    row = (await db.execute(statement)).first()
    if row is None:
        raise member_not_found()
    return row[0], row[1]


async def count_owners(db: AsyncSession, workspace_id: uuid.UUID) -> int:
    """Counts the owners, locking their rows on PostgreSQL so that two concurrent demotions
    cannot both see "another owner is left" (SQLite serialises writers anyway)."""
    owners = scoped(Membership, workspace_id).where(Membership.role == Role.OWNER)
    locked = owners.with_for_update()
    ids = (await db.execute(locked.with_only_columns(Membership.id))).scalars().all()
    return len(ids)


async def is_member_email(db: AsyncSession, workspace_id: uuid.UUID, email: str) -> bool:
    statement = members_with_users(workspace_id).where(User.email == email.lower())
    return (await db.execute(statement.limit(1))).first() is not None
