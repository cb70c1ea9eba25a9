"""Authorization declared in the endpoint signature:

    async def invite(access: MembersManage, ...) -> ...

`require(permission)` resolves the workspace in the path (`{ws}`), the caller's membership
of it and the role's permissions. Not a member, or no such workspace → 404 (never reveal
that another tenant's workspace exists); a member without the permission → 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path

from botplatform.auth.dependencies import CurrentPrincipal, Principal
from botplatform.authz.permissions import Permission, Role, permissions_of
from botplatform.db import DbSession
from botplatform.kit.errors import Forbidden
from botplatform.models import Membership, Workspace
from botplatform.workspace import repository as workspace_repository


@dataclass(frozen=True)
class WorkspaceAccess:
    """The caller, acting in one workspace, with the permissions its role grants there."""

    principal: Principal
    workspace: Workspace
    membership: Membership
    role: Role
    permissions: frozenset[Permission]

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.workspace.id

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


WorkspaceId = Annotated[uuid.UUID, Path(description="Workspace id")]


def require(permission: Permission) -> Callable[..., Awaitable[WorkspaceAccess]]:
    async def dependency(
        ws: WorkspaceId, principal: CurrentPrincipal, db: DbSession
    ) -> WorkspaceAccess:
        found = await workspace_repository.get_with_membership(db, ws, principal.user.id)
        if found is None:
            raise workspace_repository.workspace_not_found()
        workspace, membership = found
        role = Role(membership.role)
        permissions = permissions_of(role)
        if permission not in permissions:
            raise Forbidden(
                f"Your role ({role}) does not allow {permission}.",
                code="permission_denied",
                details={"permission": str(permission), "role": str(role)},
            )
        return WorkspaceAccess(principal, workspace, membership, role, permissions)

    dependency.__name__ = f"require_{permission.value.replace(':', '_')}"
    return dependency


def _access(permission: Permission) -> object:
    return Depends(require(permission))


WorkspaceRead = Annotated[WorkspaceAccess, _access(Permission.WORKSPACE_READ)]
WorkspaceUpdate = Annotated[WorkspaceAccess, _access(Permission.WORKSPACE_UPDATE)]
WorkspaceDelete = Annotated[WorkspaceAccess, _access(Permission.WORKSPACE_DELETE)]
MembersRead = Annotated[WorkspaceAccess, _access(Permission.MEMBERS_READ)]
MembersManage = Annotated[WorkspaceAccess, _access(Permission.MEMBERS_MANAGE)]
