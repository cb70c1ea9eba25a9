"""A workspace's plan and its quotas, kept in process (`kit.shared_cache`): every send, every
API request (its rate) and every created resource asks, and the answer changes only when a
superadmin edits a plan or moves the workspace to another.

    limits = await plan_cache.plan_limits(db, workspace_id)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit import shared_cache
from botplatform.models import Plan, Workspace

KIND = "plan"


@dataclass(frozen=True)
class PlanLimits:
    """A plan's name and quotas (None: unlimited), as committed."""

    name: str
    messages_per_month: int | None
    channels: int | None
    members: int | None
    bots: int | None
    broadcasts_per_month: int | None
    recipients_per_broadcast: int | None
    recipients_per_month: int | None
    ai_tokens_per_month: int | None
    api_requests_per_minute: int | None
    retention_days: int | None

    @classmethod
    def of(cls, plan: Plan) -> PlanLimits:
        return cls(
            name=plan.name,
            messages_per_month=plan.messages_per_month,
            channels=plan.channels,
            members=plan.members,
            bots=plan.bots,
            broadcasts_per_month=plan.broadcasts_per_month,
            recipients_per_broadcast=plan.recipients_per_broadcast,
            recipients_per_month=plan.recipients_per_month,
            ai_tokens_per_month=plan.ai_tokens_per_month,
            api_requests_per_minute=plan.api_requests_per_minute,
            retention_days=plan.retention_days,
        )


async def plan_limits(db: AsyncSession, workspace_id: uuid.UUID) -> PlanLimits:
    """The workspace's plan; a name no plan has (edited by hand) falls back to the cheapest
    plan, never to "unlimited"."""

    async def load() -> PlanLimits:
        statement = (
            select(Plan)
            .join(Workspace, Workspace.plan == Plan.name)
            .where(Workspace.id == workspace_id)
        )
        plan = (await db.execute(statement)).scalar_one_or_none()
        if plan is None:
            cheapest = select(Plan).order_by(Plan.position, Plan.name).limit(1)
            plan = (await db.execute(cheapest)).scalar_one()
        return PlanLimits.of(plan)

    return await shared_cache.cached(db, KIND, workspace_id, None, load)


# Plans are shared by every workspace: editing, adding or removing one (the cheapest is the
# fallback) drops the quotas of every workspace. A workspace that moves drops its own.
shared_cache.watch(Plan, KIND, lambda row: (None, None))
shared_cache.watch(Workspace, KIND, lambda row: (row.id, None), ("plan",))
# A workspace deleted (or marked so) takes everything cached for it along.
shared_cache.watch(Workspace, None, lambda row: (row.id, None), ("deleted_at",))
