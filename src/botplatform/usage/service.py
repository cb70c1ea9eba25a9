"""Quotas of the workspace's plan against what it used: the checks every creating or sending
path calls, and the usage summary. Flushes, never commits.

Monthly counters (messages, AI tokens, broadcasts and their recipients) live in
`usage_counters`; counted resources (channels, members, bots) are counted live. Inbound
messages are always counted and never refused: a spent message quota stops only what the
platform sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import QuotaExceeded
from botplatform.models import UsageCounter, Workspace
from botplatform.plans.cache import PlanLimits, plan_limits
from botplatform.usage import repository
from botplatform.usage.schemas import QuotaUse, UsageOut

MESSAGES_USED = UsageCounter.messages_inbound + UsageCounter.messages_outbound


async def plan_of(db: AsyncSession, workspace: Workspace) -> PlanLimits:
    """The workspace's plan; a name no plan has (edited by hand) falls back to the cheapest
    plan, never to "unlimited"."""
    return await plan_limits(db, workspace.id)


async def plan_for(db: AsyncSession, workspace_id: uuid.UUID) -> PlanLimits:
    """The plan of a workspace known by id (every send asks: the process's cache answers)."""
    return await plan_limits(db, workspace_id)


def exceeded(plan: PlanLimits, quota: str, used: int) -> QuotaExceeded:
    limit = getattr(plan, quota)
    return QuotaExceeded(
        f"The {plan.name} plan allows {limit} {quota.replace('_', ' ')}; upgrade the plan.",
        details={"quota": quota, "limit": limit, "used": used, "plan": plan.name},
    )


# --- counted resources ------------------------------------------------------------------


async def ensure_room(db: AsyncSession, workspace_id: uuid.UUID, quota: str) -> None:
    """Raises `quota_exceeded` when the workspace already has as many channels or bots as
    its plan allows. Call it before creating one, in the same transaction."""
    plan = await plan_for(db, workspace_id)
    limit = getattr(plan, quota)
    if limit is None:
        return
    await repository.lock_workspace(db, workspace_id)
    counter = {"channels": repository.count_channels, "bots": repository.count_bots}[quota]
    used = await counter(db, workspace_id)
    if used >= limit:
        raise exceeded(plan, quota, used)


async def ensure_member_room(
    db: AsyncSession, workspace_id: uuid.UUID, *, inviting: str | None = None
) -> None:
    """Members: on an invitation, the pending invitations (to someone else) hold a place
    too; on acceptance, only the members count."""
    plan = await plan_for(db, workspace_id)
    if plan.members is None:
        return
    await repository.lock_workspace(db, workspace_id)
    used = await repository.count_members(db, workspace_id)
    if inviting is not None:
        used += await repository.count_pending_invitations(db, workspace_id, inviting)
    if used >= plan.members:
        raise exceeded(plan, "members", used)


# --- monthly counters -------------------------------------------------------------------


async def _counter(db: AsyncSession, workspace_id: uuid.UUID) -> UsageCounter | None:
    return await repository.current(db, workspace_id)


async def ensure_can_send(db: AsyncSession, workspace_id: uuid.UUID) -> None:
    """The API's early answer: refuses a send when the month's messages are spent. The send
    job's `reserve_outbound` is what counts and holds the line."""
    plan = await plan_for(db, workspace_id)
    if plan.messages_per_month is None:
        return
    row = await _counter(db, workspace_id)
    used = row.messages_inbound + row.messages_outbound if row else 0
    if used >= plan.messages_per_month:
        raise exceeded(plan, "messages_per_month", used)


async def reserve_outbound(db: AsyncSession, workspace_id: uuid.UUID) -> QuotaExceeded | None:
    """Counts one outbound message if the month's quota has room (one statement); else the
    refusal, and nothing counted."""
    plan = await plan_for(db, workspace_id)
    if plan.messages_per_month is None:
        await repository.add(db, workspace_id, messages_outbound=1)
        return None
    if await repository.add_within(
        db, workspace_id, "messages_outbound", 1, plan.messages_per_month, MESSAGES_USED
    ):
        return None
    row = await _counter(db, workspace_id)
    return exceeded(
        plan, "messages_per_month", row.messages_inbound + row.messages_outbound if row else 0
    )


async def count_batch(
    db: AsyncSession, workspace_id: uuid.UUID, *, inbound: int, outbound: int
) -> QuotaExceeded | None:
    """A batch's new inbound messages (counted, never refused) and the `outbound` messages
    it wants to send: all counted if the month's quota has room for them (one statement on
    a plan without a quota), else none of them, and the refusal."""
    plan = await plan_for(db, workspace_id)
    if plan.messages_per_month is None:
        if inbound or outbound:
            await repository.add_messages(db, workspace_id, inbound=inbound, outbound=outbound)
        return None
    await count_inbound(db, workspace_id, inbound)
    if not outbound or await repository.add_within(
        db, workspace_id, "messages_outbound", outbound, plan.messages_per_month, MESSAGES_USED
    ):
        return None
    row = await _counter(db, workspace_id)
    return exceeded(
        plan, "messages_per_month", row.messages_inbound + row.messages_outbound if row else 0
    )


async def counting_batch(
    db: AsyncSession, workspace_id: uuid.UUID, *, inbound: int, outbound: int
) -> list[core.Write] | None:
    """`count_batch` as statements to run later (`core.together`), when the plan has no
    message quota (nothing to decide, nothing refused); None when it has one: call
    `count_batch` then."""
    plan = await plan_for(db, workspace_id)
    if plan.messages_per_month is not None:
        return None
    if not inbound and not outbound:
        return []
    return [repository.adding_messages(db, workspace_id, inbound=inbound, outbound=outbound)]


async def count_inbound(db: AsyncSession, workspace_id: uuid.UUID, messages: int) -> None:
    """Inbound messages are counted, never refused."""
    if messages:
        await repository.add(db, workspace_id, messages_inbound=messages)


async def add_ai_tokens(db: AsyncSession, workspace_id: uuid.UUID, tokens: int) -> None:
    if tokens:
        await repository.add(db, workspace_id, ai_tokens=tokens)


async def ai_tokens_spent(db: AsyncSession, workspace_id: uuid.UUID) -> bool:
    """True when the month's AI tokens are used up: the model is not called any more."""
    plan = await plan_for(db, workspace_id)
    if plan.ai_tokens_per_month is None:
        return False
    row = await _counter(db, workspace_id)
    return (row.ai_tokens if row else 0) >= plan.ai_tokens_per_month


async def reserve_broadcast(db: AsyncSession, workspace_id: uuid.UUID, recipients: int) -> None:
    """For the broadcast domain, when it starts or schedules one: its recipients within the
    per-broadcast limit, then one more broadcast and its recipients this month, both counted
    in the one statement that checks them (402 `quota_exceeded`, nothing counted, when either
    month's quota has no room). Counted once, at start: a broadcast cancelled later keeps its
    place (what it reserved may already be on its way)."""
    plan = await plan_for(db, workspace_id)
    if plan.recipients_per_broadcast is not None and recipients > plan.recipients_per_broadcast:
        raise exceeded(plan, "recipients_per_broadcast", recipients)
    amounts = {"broadcasts": 1, "broadcast_recipients": recipients}
    limits = {
        counter: limit
        for counter, limit in (
            ("broadcasts", plan.broadcasts_per_month),
            ("broadcast_recipients", plan.recipients_per_month),
        )
        if limit is not None
    }
    if await repository.add_all_within(db, workspace_id, amounts, limits):
        return
    row = await _counter(db, workspace_id)
    broadcasts = row.broadcasts if row else 0
    if plan.broadcasts_per_month is not None and broadcasts + 1 > plan.broadcasts_per_month:
        raise exceeded(plan, "broadcasts_per_month", broadcasts)
    sent_to = row.broadcast_recipients if row else 0
    raise exceeded(plan, "recipients_per_month", sent_to)


# --- the summary ------------------------------------------------------------------------


def _period_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _use(name: str, limit: int | None, used: int | None) -> QuotaUse:
    remaining = None if limit is None or used is None else max(limit - used, 0)
    return QuotaUse(name=name, limit=limit, used=used, remaining=remaining)


async def summary(db: AsyncSession, workspace: Workspace) -> UsageOut:
    plan = await plan_of(db, workspace)
    row = await _counter(db, workspace.id)
    inbound, outbound = (row.messages_inbound, row.messages_outbound) if row else (0, 0)
    ws = workspace.id
    start, end = _period_bounds(utcnow())
    return UsageOut(
        plan=plan.name,
        period=repository.period_of(start),
        period_start=start,
        period_end=end,
        messages_inbound=inbound,
        messages_outbound=outbound,
        quotas=[
            _use("messages_per_month", plan.messages_per_month, inbound + outbound),
            _use("channels", plan.channels, await repository.count_channels(db, ws)),
            _use("members", plan.members, await repository.count_members(db, ws)),
            _use("bots", plan.bots, await repository.count_bots(db, ws)),
            _use("broadcasts_per_month", plan.broadcasts_per_month, row.broadcasts if row else 0),
            _use("recipients_per_broadcast", plan.recipients_per_broadcast, None),
            _use(
                "recipients_per_month",
                plan.recipients_per_month,
                row.broadcast_recipients if row else 0,
            ),
            _use("ai_tokens_per_month", plan.ai_tokens_per_month, row.ai_tokens if row else 0),
            _use("api_requests_per_minute", plan.api_requests_per_minute, None),
            _use("retention_days", plan.retention_days, None),
        ],
    )
