"""Is the workspace open at a given moment: its weekly hours in its own time zone. Shared by
automation conditions (and available to bot flows)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from typing import Any

from botplatform.business_hours.schemas import DAYS, BusinessHours
from botplatform.models import Workspace


def hours_of(workspace: Workspace) -> BusinessHours:
    return BusinessHours.model_validate(
        {"timezone": workspace.timezone or "UTC", "days": workspace.business_hours or {}}
    )


def store(workspace: Workspace, hours: BusinessHours) -> dict[str, Any]:
    before = {"timezone": workspace.timezone, "days": workspace.business_hours}
    workspace.timezone = hours.timezone
    workspace.business_hours = {
        day: [r.model_dump() for r in ranges] for day, ranges in hours.days.items() if ranges
    }
    return before


def is_open(hours: BusinessHours, moment: datetime) -> bool:
    local = moment.astimezone(zoneinfo.ZoneInfo(hours.timezone))
    clock = local.strftime("%H:%M")
    ranges = hours.days.get(DAYS[local.weekday()], [])
    return any(r.start <= clock < r.end for r in ranges)


def minutes_until_open(hours: BusinessHours, moment: datetime) -> int | None:
    """Minutes from `moment` to the next opening within a week (0 when open now); None when
    no hours are set at all (the workspace never says it is closed)."""
    if not any(hours.days.values()):
        return None
    local = moment.astimezone(zoneinfo.ZoneInfo(hours.timezone))
    for offset in range(8):
        day = local + timedelta(days=offset)
        for r in sorted(hours.days.get(DAYS[day.weekday()], []), key=lambda r: r.start):
            start = day.replace(
                hour=int(r.start[:2]), minute=int(r.start[3:]), second=0, microsecond=0
            )
            if offset == 0 and r.start <= local.strftime("%H:%M") < r.end:
                return 0
            if start > local:
                return int((start - local).total_seconds() // 60)
    return None
