"""Queries of the retention job. Every statement is limited to one workspace (and row-level
security enforces it again on PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.scoping import scoped
from botplatform.models import Conversation, Message, Workspace

# (created_at, id) of a message: the order the job walks, and the boundary of an archive.
Position = tuple[datetime, uuid.UUID]


def _older(cutoff: datetime, after: Position | None, until: Position | None) -> list[Any]:
    """Messages created before `cutoff`, strictly after `after` and up to `until` (inclusive)
    in (created_at, id) order — spelled out, as row-value comparisons differ per database."""
    conditions: list[Any] = [Message.created_at < cutoff]
    if after is not None:
        conditions.append(
            or_(
                Message.created_at > after[0],
                and_(Message.created_at == after[0], Message.id > after[1]),
            )
        )
    if until is not None:
        conditions.append(
            or_(
                Message.created_at < until[0],
                and_(Message.created_at == until[0], Message.id <= until[1]),
            )
        )
    return conditions


async def workspaces_with_policy(db: AsyncSession) -> list[uuid.UUID]:
    """Every live workspace with a retention policy (system mode: across tenants)."""
    statement = select(Workspace.id).where(
        Workspace.retention_days.is_not(None), Workspace.deleted_at.is_(None)
    )
    return list((await db.execute(statement.order_by(Workspace.id))).scalars())


async def archive_page(
    db: AsyncSession, ws: uuid.UUID, cutoff: datetime, after: Position | None, limit: int
) -> list[tuple[Message, uuid.UUID]]:
    """The next old messages to archive, each with its conversation's contact."""
    statement = (
        scoped(Message, ws)
        .add_columns(Conversation.contact_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(*_older(cutoff, after, None))
        .order_by(Message.created_at, Message.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in (await db.execute(statement)).all()]


async def oldest(
    db: AsyncSession, ws: uuid.UUID, cutoff: datetime, until: Position | None, limit: int
) -> list[tuple[uuid.UUID, str | None]]:
    """Ids (and media keys) of the next old messages to delete."""
    statement = (
        scoped(Message, ws)
        .with_only_columns(Message.id, Message.media_key)
        .where(*_older(cutoff, None, until))
        .order_by(Message.created_at, Message.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in (await db.execute(statement)).all()]


async def delete_messages(db: AsyncSession, ws: uuid.UUID, ids: list[uuid.UUID]) -> int:
    statement = delete(Message).where(Message.workspace_id == ws, Message.id.in_(ids))
    result = await db.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
