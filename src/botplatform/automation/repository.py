from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.models import AutomationEvent, AutomationRule, AutomationRun


def rule_not_found() -> NotFound:
    return NotFound("Automation rule not found.", code="automation_not_found")


def rules(workspace_id: uuid.UUID, event: str | None = None) -> Select[Any]:
    statement = scoped(AutomationRule, workspace_id)
    if event:
        statement = statement.where(AutomationRule.event == event)
    return statement


async def get_rule(db: AsyncSession, workspace_id: uuid.UUID, rule_id: uuid.UUID) -> AutomationRule:
    found = (
        await db.execute(scoped(AutomationRule, workspace_id).where(AutomationRule.id == rule_id))
    ).scalar_one_or_none()
    if found is None:
        raise rule_not_found()
    return found


async def rules_for(db: AsyncSession, workspace_id: uuid.UUID, event: str) -> list[AutomationRule]:
    """The enabled rules of an event, in the order they run."""
    statement = (
        rules(workspace_id, event)
        .where(AutomationRule.enabled.is_(True))
        .order_by(AutomationRule.position, AutomationRule.created_at, AutomationRule.id)
    )
    return list((await db.execute(statement)).scalars())


async def lock_event(
    db: AsyncSession, workspace_id: uuid.UUID, event_id: uuid.UUID
) -> AutomationEvent | None:
    """The event row, locked on PostgreSQL: of two copies of its job, the second waits and
    then finds it processed (SQLite serialises writers anyway)."""
    statement = (
        scoped(AutomationEvent, workspace_id)
        .where(AutomationEvent.id == event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await db.execute(statement)).scalar_one_or_none()


def runs(workspace_id: uuid.UUID, rule_id: uuid.UUID, matched: bool | None) -> Select[Any]:
    statement = scoped(AutomationRun, workspace_id).where(AutomationRun.rule_id == rule_id)
    if matched is not None:
        statement = statement.where(AutomationRun.matched.is_(matched))
    return statement
