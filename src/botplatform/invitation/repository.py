from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.clock import utcnow
from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import Invitation


def invitation_not_found() -> NotFound:
    return NotFound("Invitation not found.", code="invitation_not_found")


def list_statement(workspace_id: uuid.UUID, status: str | None = None) -> Select[Any]:
    statement = scoped(Invitation, workspace_id)
    open_ = (Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
    now = utcnow()
    if status == "accepted":
        statement = statement.where(Invitation.accepted_at.is_not(None))
    elif status == "revoked":
        statement = statement.where(Invitation.revoked_at.is_not(None))
    elif status == "pending":
        statement = statement.where(*open_, Invitation.expires_at > now)
    elif status == "expired":
        statement = statement.where(*open_, Invitation.expires_at <= now)
    return statement


async def get(db: AsyncSession, workspace_id: uuid.UUID, invitation_id: uuid.UUID) -> Invitation:
    statement = scoped(Invitation, workspace_id).where(Invitation.id == invitation_id)
    invitation = (await db.execute(statement)).scalar_one_or_none()
    if invitation is None:
        raise invitation_not_found()
    return invitation


async def pending_for_email(
    db: AsyncSession, workspace_id: uuid.UUID, email: str
) -> list[Invitation]:
    statement = scoped(Invitation, workspace_id).where(
        func.lower(Invitation.email) == email.lower(),
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
    )
    return list((await db.execute(statement)).scalars().all())
