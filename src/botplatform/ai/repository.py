from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import AiIntent, AiIntentModel, AiUsage, KnowledgeEntry

# A workspace's knowledge base is read whole for retrieval; this bounds that read.
MAX_KNOWLEDGE_ENTRIES = 5000


def intent_not_found() -> NotFound:
    return NotFound("Intent not found.", code="intent_not_found")


def model_not_found() -> NotFound:
    return NotFound("Intent model version not found.", code="intent_model_not_found")


def entry_not_found() -> NotFound:
    return NotFound("Knowledge entry not found.", code="knowledge_entry_not_found")


def intents_statement(workspace_id: uuid.UUID) -> Select[Any]:
    return scoped(AiIntent, workspace_id)


def models_statement(workspace_id: uuid.UUID) -> Select[Any]:
    # The artifact can weigh hundreds of kilobytes: lists never load it.
    return scoped(AiIntentModel, workspace_id).options(defer_artifact())


def knowledge_statement(workspace_id: uuid.UUID) -> Select[Any]:
    return scoped(KnowledgeEntry, workspace_id)


def defer_artifact() -> Any:
    from sqlalchemy.orm import defer

    return defer(AiIntentModel.artifact)


async def get_intent(db: AsyncSession, workspace_id: uuid.UUID, intent_id: uuid.UUID) -> AiIntent:
    found = (
        await db.execute(scoped(AiIntent, workspace_id).where(AiIntent.id == intent_id))
    ).scalar_one_or_none()
    if found is None:
        raise intent_not_found()
    return found


async def intent_named(db: AsyncSession, workspace_id: uuid.UUID, name: str) -> AiIntent | None:
    return (
        await db.execute(scoped(AiIntent, workspace_id).where(AiIntent.name == name))
    ).scalar_one_or_none()


async def all_intents(db: AsyncSession, workspace_id: uuid.UUID) -> list[AiIntent]:
    statement = scoped(AiIntent, workspace_id).order_by(AiIntent.name)
    return list((await db.execute(statement)).scalars())


async def get_model(
    db: AsyncSession, workspace_id: uuid.UUID, model_id: uuid.UUID, *, with_artifact: bool = False
) -> AiIntentModel:
    statement = scoped(AiIntentModel, workspace_id).where(AiIntentModel.id == model_id)
    if not with_artifact:
        statement = statement.options(defer_artifact())
    found = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise model_not_found()
    return found


async def active_model_version(
    db: AsyncSession, workspace_id: uuid.UUID
) -> tuple[uuid.UUID, int] | None:
    """(id, version) of the workspace's active model: one small indexed read per inference."""
    row = (
        await db.execute(
            scoped(AiIntentModel, workspace_id)
            .with_only_columns(AiIntentModel.id, AiIntentModel.version)
            .where(AiIntentModel.is_active.is_(True), AiIntentModel.status == "ready")
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def artifact_of(db: AsyncSession, workspace_id: uuid.UUID, model_id: uuid.UUID) -> str | None:
    artifact: str | None = (
        await db.execute(
            scoped(AiIntentModel, workspace_id)
            .with_only_columns(AiIntentModel.artifact)
            .where(AiIntentModel.id == model_id)
        )
    ).scalar_one_or_none()
    return artifact


async def next_version(db: AsyncSession, workspace_id: uuid.UUID) -> int:
    latest = (
        await db.execute(
            scoped(AiIntentModel, workspace_id).with_only_columns(func.max(AiIntentModel.version))
        )
    ).scalar_one()
    return int(latest or 0) + 1


async def get_entry(
    db: AsyncSession, workspace_id: uuid.UUID, entry_id: uuid.UUID
) -> KnowledgeEntry:
    found = (
        await db.execute(scoped(KnowledgeEntry, workspace_id).where(KnowledgeEntry.id == entry_id))
    ).scalar_one_or_none()
    if found is None:
        raise entry_not_found()
    return found


async def knowledge_base(db: AsyncSession, workspace_id: uuid.UUID) -> list[KnowledgeEntry]:
    statement = (
        scoped(KnowledgeEntry, workspace_id)
        .order_by(KnowledgeEntry.created_at, KnowledgeEntry.id)
        .limit(MAX_KNOWLEDGE_ENTRIES)
    )
    return list((await db.execute(statement)).scalars())


async def usage_since(
    db: AsyncSession, workspace_id: uuid.UUID, since: datetime
) -> list[tuple[str, int, int, int, int]]:
    """Per outcome: (outcome, calls, prompt tokens, completion tokens, total tokens)."""
    rows = await db.execute(
        scoped(AiUsage, workspace_id)
        .with_only_columns(
            AiUsage.outcome,
            func.count(),
            func.coalesce(func.sum(AiUsage.prompt_tokens), 0),
            func.coalesce(func.sum(AiUsage.completion_tokens), 0),
            func.coalesce(func.sum(AiUsage.total_tokens), 0),
        )
        .where(AiUsage.created_at >= since)
        .group_by(AiUsage.outcome)
        .order_by(AiUsage.outcome)
    )
    return [(str(o), int(c), int(p), int(q), int(t)) for o, c, p, q, t in rows.all()]
