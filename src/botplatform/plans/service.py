"""Editing plans and moving workspaces between them (superadmins only). Flushes, never
commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.models import Plan, Workspace
from botplatform.plans import repository
from botplatform.plans.defaults import QUOTA_FIELDS
from botplatform.plans.schemas import PlanOut, PlanUpdate


def to_out(plan: Plan) -> PlanOut:
    return PlanOut(name=plan.name, **{field: getattr(plan, field) for field in QUOTA_FIELDS})


async def update_quotas(db: AsyncSession, plan: Plan, body: PlanUpdate) -> dict[str, Any]:
    """Sets the quotas the body names (null: unlimited); the before/after of each change."""
    changes: dict[str, Any] = {}
    for field in body.model_fields_set & set(QUOTA_FIELDS):
        before, after = getattr(plan, field), getattr(body, field)
        if before != after:
            changes[field] = {"before": before, "after": after}
            setattr(plan, field, after)
    await db.flush()
    return changes


async def change_plan(db: AsyncSession, workspace: Workspace, name: str) -> dict[str, Any]:
    """Moves the workspace to the plan `name` (404 when there is none). Usage already counted
    this month stays; the new quotas apply from the next request or job."""
    plan = await repository.get(db, name)
    if workspace.plan == plan.name:
        return {}
    changes = {"plan": {"before": workspace.plan, "after": plan.name}}
    workspace.plan = plan.name
    await db.flush()
    return changes
