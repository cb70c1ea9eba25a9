"""API keys: created with a subset of the creator's permissions, shown once, revocable."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.api_key import keys
from botplatform.api_key.schemas import ApiKeyCreate
from botplatform.authz.dependencies import WorkspaceAccess
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Forbidden, Unprocessable
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


async def revoke(db: AsyncSession, api_key: ApiKey) -> None:
    if api_key.revoked_at is not None:
        raise Conflict("This key is already revoked.", code="api_key_revoked")
    api_key.revoked_at = utcnow()
    await db.flush()
