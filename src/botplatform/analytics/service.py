"""The rollup: closed days' counts written to `analytics_daily`, and the cycles' durations
stored on them. Rows are the truth; all of this can be made again (`rebuild`)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.analytics import repository
from botplatform.analytics.repository import CycleTimes
from botplatform.analytics.timing import business_seconds, day_window, days_between, local_day
from botplatform.business_hours.schemas import BusinessHours
from botplatform.business_hours.service import hours_of
from botplatform.kit.clock import utcnow
from botplatform.models import AnalyticsWatermark, ConversationCycle, Workspace

ROLLUP_JOB = "analytics.rollup"
#: A cycle still waiting for its first reply or its resolve is looked at again for this long.
FACTS_LOOKBACK = timedelta(days=35)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


async def aggregate_day(db: AsyncSession, workspace: Workspace, day: date) -> None:
    """Counts one local day from the rows and replaces its rollup."""
    start, end = day_window(workspace.timezone or "UTC", day)
    counts = await repository.counts_of_window(db, workspace.id, start, end)
    await repository.replace_day(db, workspace.id, day.isoformat(), counts)


def facts_of(hours: BusinessHours, cycle: CycleTimes) -> dict[str, Any]:
    """A cycle's durations: to its first reply and to its resolve, wall-clock and within
    business hours."""
    first, resolved = cycle.first_response_at, cycle.resolved_at

    def span(end: datetime | None) -> tuple[float | None, float | None]:
        if end is None:
            return None, None
        wall = max(0.0, (end - cycle.opened_at).total_seconds())
        return wall, business_seconds(hours, cycle.opened_at, end)

    first_wall, first_business = span(first)
    resolution_wall, resolution_business = span(resolved)
    return {
        "cycle_id": cycle.id,
        "first_response_at": first,
        "first_responder_id": cycle.first_responder_id if first else None,
        "first_response_seconds": first_wall,
        "first_response_business_seconds": first_business,
        "resolution_seconds": resolution_wall,
        "resolution_business_seconds": resolution_business,
        "facts_at": utcnow(),
    }


async def refresh_facts(
    db: AsyncSession, workspace: Workspace, start: datetime, end: datetime, *, awaiting: bool
) -> int:
    """Stores the durations of the window's cycles that lack them (with `awaiting`, also
    looks again at those still waiting for a first reply: the job does, a read does not);
    returns how many."""
    hours = hours_of(workspace)
    missing = await repository.cycles_missing_facts(db, workspace.id, start, end, awaiting=awaiting)
    await repository.store_facts(db, [facts_of(hours, cycle) for cycle in missing])
    return len(missing)


async def _forget_facts(db: AsyncSession, workspace_id: uuid.UUID, start: datetime) -> None:
    """Business hours may have changed since: the rebuild computes the durations again."""
    await db.execute(
        update(ConversationCycle)
        .where(ConversationCycle.workspace_id == workspace_id, ConversationCycle.opened_at >= start)
        .values(
            facts_at=None,
            updated_at=ConversationCycle.updated_at,  # derived values: no change to fold in
        )
        .execution_options(synchronize_session=False)
    )


async def _mark(db: AsyncSession, workspace_id: uuid.UUID, now: datetime) -> None:
    found = await repository.watermark(db, workspace_id)
    if found is None:
        db.add(AnalyticsWatermark(workspace_id=workspace_id, checked_at=now))
    else:
        found.checked_at = now
    await db.flush()


async def run(db: AsyncSession, workspace: Workspace, now: datetime | None = None) -> list[date]:
    """One incremental pass: the closed days that anything changed in since the last pass
    (a late status webhook, a resolve, a late-arriving message) are aggregated again.
    Returns the days aggregated."""
    now = now or utcnow()
    zone = workspace.timezone or "UTC"
    mark = await repository.watermark(db, workspace.id)
    since = mark.checked_at if mark else EPOCH
    first = await repository.first_change_since(db, workspace.id, since)
    yesterday = local_day(zone, now) - timedelta(days=1)
    days = list(days_between(local_day(zone, first), yesterday)) if first else []
    for day in days:
        await aggregate_day(db, workspace, day)
    lookback = min(first, now - FACTS_LOOKBACK) if first else now - FACTS_LOOKBACK
    await refresh_facts(db, workspace, lookback, now, awaiting=True)
    await _mark(db, workspace.id, now)
    return days


async def rebuild(
    db: AsyncSession, workspace: Workspace, since: date, now: datetime | None = None
) -> list[date]:
    """Aggregates every closed day from `since` again, durations included."""
    now = now or utcnow()
    zone = workspace.timezone or "UTC"
    start, _ = day_window(zone, since)
    await _forget_facts(db, workspace.id, start)
    days = list(days_between(since, local_day(zone, now) - timedelta(days=1)))
    for day in days:
        await aggregate_day(db, workspace, day)
    await refresh_facts(db, workspace, start, now, awaiting=True)
    # Then the usual pass: what changed before `since` since the last pass, and the mark.
    return sorted(set(days) | set(await run(db, workspace, now)))
