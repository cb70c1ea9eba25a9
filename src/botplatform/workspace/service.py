"""Rules of the workspace domain. Flushes, never commits: the edge owns the transaction."""

from __future__ import annotations

import re
import secrets
import unicodedata
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.audit.service import diff
from botplatform.authz.permissions import Role
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Forbidden
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Membership, User, Workspace
from botplatform.workspace import repository

if TYPE_CHECKING:
    from botplatform.authz.dependencies import WorkspaceAccess
from botplatform.workspace.schemas import WorkspaceCreate, WorkspaceUpdate


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48]
    return slug if len(slug) >= 2 else "workspace"


async def _free_slug(db: AsyncSession, base: str) -> str:
    slug = base
    while await repository.slug_taken(db, slug):
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


async def create(db: AsyncSession, creator: User, data: WorkspaceCreate) -> Membership:
    """Creates the workspace with the creator as its first owner."""
    if data.slug and await repository.slug_taken(db, data.slug):
        raise Conflict("That slug is taken.", code="slug_taken", details={"field": "slug"})
    slug = data.slug or await _free_slug(db, slugify(data.name))
    workspace = Workspace(name=data.name, slug=slug)
    db.add(workspace)
    await db.flush()
    await enter_workspace(db, workspace.id)
    membership = Membership(workspace_id=workspace.id, user_id=creator.id, role=Role.OWNER)
    db.add(membership)
    await db.flush()
    return membership


async def update(
    db: AsyncSession, access: WorkspaceAccess, data: WorkspaceUpdate
) -> dict[str, Any]:
    """Applies the changes; returns the audit diff."""
    workspace = access.workspace
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "require_2fa" in changes and access.role != Role.OWNER:
        raise Forbidden("Only an owner can change the 2FA requirement.", code="owner_only")
    before = {field: getattr(workspace, field) for field in changes}
    if "slug" in changes and await repository.slug_taken(db, changes["slug"], workspace.id):
        raise Conflict("That slug is taken.", code="slug_taken", details={"field": "slug"})
    for field, value in changes.items():
        setattr(workspace, field, value)
    await db.flush()
    return diff(before, changes)


async def delete(db: AsyncSession, workspace: Workspace) -> None:
    """Hides the workspace from everyone at once; its data is purged after the grace period."""
    workspace.deleted_at = utcnow()
    # Its host name is free at once for another workspace (a custom domain is unique).
    workspace.custom_domain = None
    await db.flush()
