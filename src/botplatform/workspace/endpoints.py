from __future__ import annotations

from fastapi import APIRouter, status

from botplatform.audit.dependencies import Audit
from botplatform.auth.dependencies import CurrentUser
from botplatform.authz.dependencies import (
    WorkspaceAccess,
    WorkspaceDelete,
    WorkspaceRead,
    WorkspaceUpdate,
)
from botplatform.authz.permissions import Role, permissions_of
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.models import Membership, Workspace
from botplatform.workspace import repository, service
from botplatform.workspace.schemas import WorkspaceCreate, WorkspaceOut
from botplatform.workspace.schemas import WorkspaceUpdate as WorkspaceUpdateBody

router = APIRouter(prefix="/workspaces", tags=["workspaces"])


def _out(workspace: Workspace, membership: Membership) -> WorkspaceOut:
    role = Role(membership.role)
    return WorkspaceOut(
        id=workspace.id,
        name=workspace.name,
        slug=workspace.slug,
        plan=workspace.plan,
        require_2fa=workspace.require_2fa,
        created_at=workspace.created_at,
        role=role,
        permissions=sorted(permissions_of(role)),
    )


def _access_out(access: WorkspaceAccess) -> WorkspaceOut:
    return _out(access.workspace, access.membership)


@router.get("")
async def list_workspaces(principal: CurrentUser, db: DbSession) -> Envelope[list[WorkspaceOut]]:
    """The workspaces the caller belongs to, with its role in each."""
    rows = await repository.list_for_user(db, principal.user.id)
    return ok([_out(workspace, membership) for workspace, membership in rows])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_workspace(
    body: WorkspaceCreate, principal: CurrentUser, db: DbSession, audit: Audit
) -> Envelope[WorkspaceOut]:
    """Creates a workspace; the caller becomes its owner."""
    membership = await service.create(db, principal.user, body)
    workspace = await db.get(Workspace, membership.workspace_id)
    assert workspace is not None
    await audit.log(
        "workspace.create",
        workspace_id=workspace.id,
        target_type="workspace",
        target_id=workspace.id,
        changes={"name": workspace.name},
    )
    return ok(_out(workspace, membership), "Workspace created")


@router.get("/{ws}")
async def get_workspace(access: WorkspaceRead) -> Envelope[WorkspaceOut]:
    return ok(_access_out(access))


@router.patch("/{ws}")
async def update_workspace(
    body: WorkspaceUpdateBody, access: WorkspaceUpdate, db: DbSession, audit: Audit
) -> Envelope[WorkspaceOut]:
    """Renames the workspace, changes its slug, or (owners) requires 2FA of its members."""
    changes = await service.update(db, access, body)
    await audit.log(
        "workspace.update",
        workspace_id=access.workspace_id,
        target_type="workspace",
        target_id=access.workspace_id,
        changes=changes,
    )
    return ok(_access_out(access), "Workspace updated")


@router.delete("/{ws}")
async def delete_workspace(access: WorkspaceDelete, db: DbSession, audit: Audit) -> Envelope[None]:
    """Deletes the workspace for every member at once (owners only)."""
    await service.delete(db, access.workspace)
    await audit.log(
        "workspace.delete",
        workspace_id=access.workspace_id,
        target_type="workspace",
        target_id=access.workspace_id,
    )
    return ok(None, "Workspace deleted")
