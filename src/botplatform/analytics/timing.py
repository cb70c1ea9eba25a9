"""Time arithmetic of the figures: local days as UTC windows (23 or 25 hours across a DST
change), seconds within business hours, and the percentiles."""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta

from botplatform.business_hours.schemas import DAYS, BusinessHours


def day_window(zone: str, day: date) -> tuple[datetime, datetime]:
    """The UTC moments a local day starts and ends (its midnight to the next)."""
    tz = zoneinfo.ZoneInfo(zone)
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def local_day(zone: str, moment: datetime) -> date:
    return moment.astimezone(zoneinfo.ZoneInfo(zone)).date()


def days_between(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _local_moment(tz: zoneinfo.ZoneInfo, day: date, clock: str) -> datetime:
    if clock == "24:00":
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    hours, minutes = (int(part) for part in clock.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=tz)


def has_hours(hours: BusinessHours) -> bool:
    return any(hours.days.get(day) for day in DAYS)


def business_seconds(hours: BusinessHours, start: datetime, end: datetime) -> float:
    """Seconds of [start, end) that fall within the weekly opening hours, in the hours' own
    time zone (a range's wall-clock times are converted per day, so DST is respected).
    Without any hours set, every second counts."""
    if end <= start:
        return 0.0
    if not has_hours(hours):
        return (end - start).total_seconds()
    tz = zoneinfo.ZoneInfo(hours.timezone)
    total = 0.0
    for day in days_between(start.astimezone(tz).date(), end.astimezone(tz).date()):
        for opening in hours.days.get(DAYS[day.weekday()], []):
            begin = max(start, _local_moment(tz, day, opening.start).astimezone(UTC))
            finish = min(end, _local_moment(tz, day, opening.end).astimezone(UTC))
            total += max(0.0, (finish - begin).total_seconds())
    return total


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The linear-interpolation percentile (PostgreSQL's `percentile_cont`): the median of
    1, 2, 10 is 2, of 1, 2 is 1.5; p90 of 1..11 is 10. None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * weight
