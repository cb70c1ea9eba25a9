"""Queries of the branding domain. Branding lives on the workspace row (the tenant itself,
without row-level security), so the one cross-tenant read here is deliberate: the login page
finds a workspace by the host name it was asked on, before anyone is logged in."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.models import Workspace


async def by_domain(db: AsyncSession, host: str) -> Workspace | None:
    statement = select(Workspace).where(
        Workspace.custom_domain == host, Workspace.deleted_at.is_(None)
    )
    return (await db.execute(statement)).scalar_one_or_none()


async def live_workspace(db: AsyncSession, workspace_id: uuid.UUID) -> Workspace | None:
    """The workspace whose public branding (logo, stylesheet) is asked for; None if deleted."""
    workspace = await db.get(Workspace, workspace_id)
    return workspace if workspace is not None and workspace.deleted_at is None else None


async def domain_taken(db: AsyncSession, host: str, except_id: uuid.UUID) -> bool:
    statement = select(Workspace.id).where(
        Workspace.custom_domain == host, Workspace.id != except_id
    )
    return (await db.execute(statement.limit(1))).first() is not None
