"""Plans are a system table: no tenant scoping (every workspace reads the same rows)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.errors import NotFound
from botplatform.models import Plan


def plan_not_found() -> NotFound:
    return NotFound("No plan by that name.", code="plan_not_found")


async def list_plans(db: AsyncSession) -> list[Plan]:
    return list((await db.execute(select(Plan).order_by(Plan.position, Plan.name))).scalars())


async def find(db: AsyncSession, name: str) -> Plan | None:
    return await db.get(Plan, name)


async def get(db: AsyncSession, name: str) -> Plan:
    plan = await find(db, name)
    if plan is None:
        raise plan_not_found()
    return plan
