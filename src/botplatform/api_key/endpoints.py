from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from botplatform.api_key import keys, repository, service
from botplatform.api_key.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import ApiKeysManage
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import ApiKey

router = APIRouter(prefix="/workspaces/{ws}", tags=["api keys"])


def _out(api_key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=api_key.id,
        name=api_key.name,
        prefix=f"{keys.PREFIX}{api_key.lookup}",
        scopes=api_key.scopes,
        allowed_ips=api_key.allowed_ips,
        expires_at=api_key.expires_at,
        last_used_at=api_key.last_used_at,
        last_used_ip=api_key.last_used_ip,
        revoked_at=api_key.revoked_at,
        created_by_id=api_key.created_by_id,
        created_at=api_key.created_at,
    )


@router.get("/api-keys")
async def list_api_keys(
    access: ApiKeysManage, db: DbSession, page: PageQuery
) -> Envelope[Page[ApiKeyOut]]:
    rows, next_cursor = await paginate(
        db, repository.list_statement(access.workspace_id), ApiKey.created_at, ApiKey.id, page
    )
    return ok(Page(items=[_out(row[0]) for row in rows], next_cursor=next_cursor))


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
async def create_api_key(
    access: ApiKeysManage, body: ApiKeyCreate, db: DbSession, audit: Audit
) -> Envelope[ApiKeyCreated]:
    """Creates a key for this workspace with some of your permissions. The key is in this
    answer only: it is stored as a hash. Send it as `Authorization: Bearer <key>`."""
    api_key, plaintext = await service.create(db, access, body)
    await audit.log(
        "api_key.create",
        workspace_id=access.workspace_id,
        target_type="api_key",
        target_id=api_key.id,
        changes={
            "name": api_key.name,
            "scopes": api_key.scopes,
            "allowed_ips": api_key.allowed_ips,
        },
    )
    return ok(ApiKeyCreated(api_key=_out(api_key), key=plaintext), "Copy the key now")


@router.get("/api-keys/{key_id}")
async def get_api_key(
    access: ApiKeysManage, key_id: uuid.UUID, db: DbSession
) -> Envelope[ApiKeyOut]:
    return ok(_out(await repository.get(db, access.workspace_id, key_id)))


@router.delete("/api-keys/{key_id}")
async def revoke_api_key(
    access: ApiKeysManage, key_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[ApiKeyOut]:
    """Revokes the key: it stops working at once. Nobody revokes a key created by someone
    whose role is above their own (403 `role_too_high`), as with members."""
    api_key = await repository.get(db, access.workspace_id, key_id)
    await service.revoke(db, access, api_key)
    await audit.log(
        "api_key.revoke",
        workspace_id=access.workspace_id,
        target_type="api_key",
        target_id=api_key.id,
    )
    return ok(_out(api_key), "API key revoked")
