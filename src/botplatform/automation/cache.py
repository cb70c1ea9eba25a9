"""The events a workspace's enabled automation rules react to, kept in process
(`kit.shared_cache`): every message asks whether a rule waits for it, and the answer changes
only when a rule is created, deleted, enabled, disabled or moved to another event.

    if MESSAGE_RECEIVED in await automation_cache.rule_events(db, workspace_id): ...
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit import shared_cache
from botplatform.kit.scoping import scoped
from botplatform.models import AutomationRule

KIND = "rule_events"


async def rule_events(db: AsyncSession, workspace_id: uuid.UUID) -> frozenset[str]:
    """The event names that have at least one enabled rule in the workspace."""

    async def load() -> frozenset[str]:
        statement = (
            scoped(AutomationRule, workspace_id)
            .where(AutomationRule.enabled.is_(True))
            .with_only_columns(AutomationRule.event)
            .distinct()
        )
        return frozenset((await db.execute(statement)).scalars().all())

    return await shared_cache.cached(db, KIND, workspace_id, None, load)


shared_cache.watch(AutomationRule, KIND, lambda row: (row.workspace_id, None), ("event", "enabled"))
