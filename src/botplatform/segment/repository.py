"""Every query of the segment domain; all reads start from `kit.scoping.scoped`."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, func
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import Contact, Segment


def segment_not_found() -> NotFound:
    return NotFound("Segment not found.", code="segment_not_found")


def list_statement(workspace_id: uuid.UUID) -> Select[Any]:
    return scoped(Segment, workspace_id)


async def get(db: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> Segment:
    statement = scoped(Segment, workspace_id).where(Segment.id == segment_id)
    found = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise segment_not_found()
    return found


async def find_by_name(db: AsyncSession, workspace_id: uuid.UUID, name: str) -> Segment | None:
    statement = scoped(Segment, workspace_id).where(Segment.name == name)
    return (await db.execute(statement)).scalar_one_or_none()


def contacts(workspace_id: uuid.UUID, condition: ColumnElement[bool]) -> Select[Any]:
    """The workspace's contacts meeting `condition` (from `segment.filters.where`)."""
    return scoped(Contact, workspace_id).where(condition)


async def count_contacts(
    db: AsyncSession, workspace_id: uuid.UUID, condition: ColumnElement[bool]
) -> int:
    statement = contacts(workspace_id, condition).with_only_columns(func.count(Contact.id))
    return int((await db.execute(statement)).scalar_one())


async def contact_ids_after(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    condition: ColumnElement[bool],
    after: uuid.UUID | None,
    limit: int,
) -> list[uuid.UUID]:
    """One keyset page of contact ids, in id order, strictly after `after`."""
    statement = contacts(workspace_id, condition).with_only_columns(Contact.id)
    if after is not None:
        statement = statement.where(Contact.id > after)
    statement = statement.order_by(Contact.id).limit(limit)
    return list((await db.execute(statement)).scalars())
