"""Is the workspace open at a given moment: its weekly hours in its own time zone. Shared by
automation conditions (and available to bot flows)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
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
