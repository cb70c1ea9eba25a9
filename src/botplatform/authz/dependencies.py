"""Authorization declared in the endpoint signature:

    async def invite(access: MembersManage, ...) -> ...

`require(permission)` resolves the workspace in the path (`{ws}`), what the caller may do
there, and enters that workspace for row-level security. Not a member, another workspace's
API key, or no such workspace → 404 (never reveal that another tenant's workspace exists);
a member (or key) without the permission → 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.auth.dependencies import CurrentPrincipal, CurrentUser, Principal, UserPrincipal
from botplatform.authz import cache as authz_cache
from botplatform.authz.permissions import CHANNEL_SCOPED_ROLES, Permission, Role, permissions_of
from botplatform.db import DbSession
from botplatform.kit.errors import Forbidden
from botplatform.kit.scoping import enter_system, enter_workspace, scoped
from botplatform.member import repository as member_repository
from botplatform.models import ApiKey, Membership, User, Workspace
from botplatform.runtime import Runtime, RuntimeDep
from botplatform.usage import service as usage
from botplatform.workspace import repository as workspace_repository


@dataclass(frozen=True)
class WorkspaceAccess:
    """The caller, acting in one workspace, with the permissions it has there. For an API key,
    `membership` and `role` are its creator's: a key never outranks the person behind it.
    `channel_ids`: the channels a channel-scoped role (an agent) is assigned to, read afresh on
    every request so an assignment change takes effect at once; None for every channel."""

    principal: Principal
    workspace: Workspace
    membership: Membership
    role: Role
    permissions: frozenset[Permission]
    channel_ids: frozenset[uuid.UUID] | None = None

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.workspace.id

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


_KNOWN = frozenset(permission.value for permission in Permission)
WorkspaceId = Annotated[uuid.UUID, Path(description="Workspace id")]


async def _user_access(
    db: AsyncSession, principal: Principal, ws: uuid.UUID
) -> tuple[Workspace, Membership, frozenset[Permission]]:
    assert principal.user is not None
    found = await authz_cache.workspace_and_membership(db, ws, principal.user.id)
    if found is None:
        raise workspace_repository.workspace_not_found()
    workspace, membership = found
    await enter_workspace(db, workspace.id)
    if workspace.require_2fa and not principal.user.has_two_factor:
        raise Forbidden(
            "This workspace requires two-factor authentication: enable it first.",
            code="two_factor_required",
        )
    return workspace, membership, permissions_of(membership.role)


async def _plan_rate_limit(db: AsyncSession, runtime: Runtime, workspace: Workspace) -> None:
    """Every API key of a workspace shares its plan's requests per minute (None: no limit
    beyond the per-IP `general` tier). The plan is read per request, so a plan change or a
    quota edit takes effect at once."""
    per_minute = (await usage.plan_of(db, workspace)).api_requests_per_minute
    if per_minute is not None:
        decision = await runtime.ratelimiter.hit_per_minute("api", str(workspace.id), per_minute)
        decision.raise_if_denied()


async def _api_key_access(
    db: AsyncSession, runtime: Runtime, api_key: ApiKey, ws: uuid.UUID
) -> tuple[Workspace, Membership, frozenset[Permission]]:
    workspace = await db.get(Workspace, ws) if api_key.workspace_id == ws else None
    if workspace is None or workspace.deleted_at is not None:
        raise workspace_repository.workspace_not_found()
    await enter_workspace(db, workspace.id)
    await _plan_rate_limit(db, runtime, workspace)
    creator = (
        await db.execute(
            scoped(Membership, workspace.id).where(Membership.user_id == api_key.created_by_id)
        )
    ).scalar_one_or_none()
    if creator is None:
        raise Forbidden(
            "This API key's creator has left the workspace; the key no longer works.",
            code="api_key_inactive",
        )
    if workspace.require_2fa:
        await _creator_has_two_factor(db, creator.user_id)
    granted = frozenset(Permission(scope) for scope in api_key.scopes if scope in _KNOWN)
    return workspace, creator, granted & permissions_of(creator.role)


async def _creator_has_two_factor(db: AsyncSession, user_id: uuid.UUID) -> None:
    """A key acts for the member who made it: in a workspace that requires 2FA, a key of a
    member without 2FA stops working like that member's session does (and works again once
    they turn 2FA on), so a key cannot route around the requirement."""
    creator = await db.get(User, user_id)
    if creator is None or not creator.has_two_factor:
        raise Forbidden(
            "This workspace requires two-factor authentication, and this API key's creator "
            "has not enabled it; the key works again once they do.",
            code="two_factor_required",
        )


async def workspace_access(
    db: AsyncSession, runtime: Runtime, principal: Principal, ws: uuid.UUID
) -> WorkspaceAccess:
    """What `principal` may do in workspace `ws` (404 when it is not its workspace), for
    callers that check permissions themselves (the live-events WebSocket)."""
    if principal.api_key is not None:
        workspace, membership, permissions = await _api_key_access(
            db, runtime, principal.api_key, ws
        )
    else:
        workspace, membership, permissions = await _user_access(db, principal, ws)
    role = Role(membership.role)
    channel_ids = None
    if role in CHANNEL_SCOPED_ROLES:  # an API key is scoped like the member who made it
        channel_ids = await member_repository.assigned_channel_ids(
            db, workspace.id, membership.user_id
        )
    return WorkspaceAccess(principal, workspace, membership, role, permissions, channel_ids)


async def access_for(
    principal: Principal,
    ws: uuid.UUID,
    db: AsyncSession,
    runtime: Runtime,
    permission: Permission,
) -> WorkspaceAccess:
    """What `require(permission)` decides, for callers that found the principal themselves
    (the dashboard, from its session cookie)."""
    access = await workspace_access(db, runtime, principal, ws)
    if permission not in access.permissions:
        raise Forbidden(
            f"You may not {permission} here.",
            code="permission_denied",
            details={"permission": str(permission), "role": str(access.role)},
        )
    return access


def require(permission: Permission) -> Callable[..., Awaitable[WorkspaceAccess]]:
    async def dependency(
        ws: WorkspaceId, principal: CurrentPrincipal, db: DbSession, runtime: RuntimeDep
    ) -> WorkspaceAccess:
        return await access_for(principal, ws, db, runtime, permission)

    dependency.__name__ = f"require_{permission.value.replace(':', '_')}"
    return dependency


async def require_superadmin(principal: CurrentUser, db: DbSession) -> UserPrincipal:
    """A platform superadmin (not a workspace role: a person, never an API key). The routes
    behind it work across tenants by purpose, so it enters the system scope."""
    if not principal.user.is_superadmin:
        raise Forbidden("Only platform superadmins may do this.", code="not_superadmin")
    await enter_system(db)
    return principal


Superadmin = Annotated[UserPrincipal, Depends(require_superadmin)]


def _access(permission: Permission) -> object:
    return Depends(require(permission))


WorkspaceRead = Annotated[WorkspaceAccess, _access(Permission.WORKSPACE_READ)]
WorkspaceUpdate = Annotated[WorkspaceAccess, _access(Permission.WORKSPACE_UPDATE)]
WorkspaceDelete = Annotated[WorkspaceAccess, _access(Permission.WORKSPACE_DELETE)]
MembersRead = Annotated[WorkspaceAccess, _access(Permission.MEMBERS_READ)]
MembersManage = Annotated[WorkspaceAccess, _access(Permission.MEMBERS_MANAGE)]
ApiKeysManage = Annotated[WorkspaceAccess, _access(Permission.API_KEYS_MANAGE)]
ChannelsRead = Annotated[WorkspaceAccess, _access(Permission.CHANNELS_READ)]
ChannelsManage = Annotated[WorkspaceAccess, _access(Permission.CHANNELS_MANAGE)]
ConversationsRead = Annotated[WorkspaceAccess, _access(Permission.CONVERSATIONS_READ)]
ConversationsReply = Annotated[WorkspaceAccess, _access(Permission.CONVERSATIONS_REPLY)]
ConversationsManage = Annotated[WorkspaceAccess, _access(Permission.CONVERSATIONS_MANAGE)]
ContactsRead = Annotated[WorkspaceAccess, _access(Permission.CONTACTS_READ)]
ContactsManage = Annotated[WorkspaceAccess, _access(Permission.CONTACTS_MANAGE)]
AuditRead = Annotated[WorkspaceAccess, _access(Permission.AUDIT_READ)]
BotsRead = Annotated[WorkspaceAccess, _access(Permission.BOTS_READ)]
BotsManage = Annotated[WorkspaceAccess, _access(Permission.BOTS_MANAGE)]
WebhooksRead = Annotated[WorkspaceAccess, _access(Permission.WEBHOOKS_READ)]
WebhooksManage = Annotated[WorkspaceAccess, _access(Permission.WEBHOOKS_MANAGE)]
AutomationsManage = Annotated[WorkspaceAccess, _access(Permission.AUTOMATIONS_MANAGE)]
ContactsExport = Annotated[WorkspaceAccess, _access(Permission.CONTACTS_EXPORT)]
BillingRead = Annotated[WorkspaceAccess, _access(Permission.BILLING_READ)]
PrivacyErase = Annotated[WorkspaceAccess, _access(Permission.PRIVACY_ERASE)]
AnalyticsRead = Annotated[WorkspaceAccess, _access(Permission.ANALYTICS_READ)]
BroadcastsRead = Annotated[WorkspaceAccess, _access(Permission.BROADCASTS_READ)]
BroadcastsSend = Annotated[WorkspaceAccess, _access(Permission.BROADCASTS_SEND)]
TemplatesRead = Annotated[WorkspaceAccess, _access(Permission.TEMPLATES_READ)]
TemplatesManage = Annotated[WorkspaceAccess, _access(Permission.TEMPLATES_MANAGE)]
