"""API keys: created with a subset of the creator's permissions, shown once, revocable."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.api_key import keys
from botplatform.api_key.schemas import ApiKeyCreate
from botplatform.authz.dependencies import WorkspaceAccess
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from botplatform.member import repository as member_repository
from botplatform.member.service import ensure_not_above
from botplatform.models import ApiKey


async def create(
    db: AsyncSession, access: WorkspaceAccess, data: ApiKeyCreate
) -> tuple[ApiKey, str]:
    if access.principal.user is None:
        raise Forbidden(
            "API keys are created by people, not by other keys.", code="user_session_required"
        )
    beyond = sorted(str(scope) for scope in set(data.scopes) - access.permissions)
    if beyond:
        raise Forbidden(
            "A key cannot have permissions you do not have.",
            code="scope_not_allowed",
            details={"scopes": beyond},
        )
    if data.expires_at is not None and data.expires_at <= utcnow():
        raise Unprocessable(
            "expires_at must be in the future.",
            code="validation_error",
            details=[{"field": "body.expires_at", "message": "in the past"}],
        )
    new = keys.generate()
    api_key = ApiKey(
        workspace_id=access.workspace_id,
        name=data.name,
        lookup=new.lookup,
        key_hash=new.key_hash,
        scopes=sorted({str(scope) for scope in data.scopes}),
        allowed_ips=data.allowed_ips,
        created_by_id=access.principal.user.id,
        expires_at=data.expires_at,
    )
    db.add(api_key)
    await db.flush()
    return api_key, new.plaintext


async def ensure_may_manage(db: AsyncSession, access: WorkspaceAccess, api_key: ApiKey) -> None:
    """A key acts with its creator's role, so managing it is acting on that role: the members'
    rule applies (a developer cannot revoke an admin's key). A key whose creator has left
    the workspace no longer works, and anyone who manages keys may clean it up."""
    if api_key.created_by_id is None:
        return
    try:
        creator, _ = await member_repository.get(db, access.workspace_id, api_key.created_by_id)
    except NotFound:
        return
    ensure_not_above(access, creator.role, "a key created by someone")


async def revoke(db: AsyncSession, access: WorkspaceAccess, api_key: ApiKey) -> None:
    await ensure_may_manage(db, access, api_key)
    if api_key.revoked_at is not None:
        raise Conflict("This key is already revoked.", code="api_key_revoked")
    api_key.revoked_at = utcnow()
    await db.flush()
