from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import ApiKey


def list_statement(workspace_id: uuid.UUID) -> Select[Any]:
    return scoped(ApiKey, workspace_id)


async def get(db: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    found = (
        await db.execute(scoped(ApiKey, workspace_id).where(ApiKey.id == key_id))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("API key not found.", code="api_key_not_found")
    return found
