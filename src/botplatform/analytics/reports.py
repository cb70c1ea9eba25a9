"""The figures of a date range, as the API and the dashboard show them: closed days that
the rollup job has aggregated come from `analytics_daily`, the rest (today, and any day
after the job's last pass) is counted live from the rows, with the same queries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.analytics import repository
from botplatform.analytics.repository import Count
from botplatform.analytics.service import facts_of
from botplatform.analytics.stats import MEASURES, By, Facts, Scope, Stats, duration_stats
from botplatform.analytics.timing import day_window, days_between, local_day
from botplatform.business_hours.service import hours_of
from botplatform.kit.clock import utcnow
from botplatform.models import Workspace

Granularity = Literal["day", "week", "month"]


def bucket_of(day: date, granularity: Granularity) -> date:
    """The first day of the bucket a day falls in (weeks start on Monday)."""
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


@dataclass
class Window:
    workspace: Workspace
    first: date
    last: date
    channel_id: uuid.UUID | None = None
    granularity: Granularity = "day"
    now: datetime = field(default_factory=utcnow)

    @property
    def zone(self) -> str:
        return self.workspace.timezone or "UTC"

    def bounds(self) -> tuple[datetime, datetime]:
        return day_window(self.zone, self.first)[0], day_window(self.zone, self.last)[1]


async def counts(
    db: AsyncSession, window: Window, families: Sequence[str] = repository.ALL_FAMILIES
) -> list[tuple[date, Count]]:
    """The counts of the range (of the families asked), by local day, filtered to the
    channel when one is given."""
    ws = window.workspace.id
    mark = await repository.watermark(db, ws)
    live_from = local_day(window.zone, mark.checked_at) if mark else window.first
    out: list[tuple[date, Count]] = []
    rolled_last = min(window.last, live_from - timedelta(days=1))
    if window.first <= rolled_last:
        rows = await repository.rolled_up(
            db, ws, window.first.isoformat(), rolled_last.isoformat(), families
        )
        out += [(date.fromisoformat(day), count) for day, count in rows]
    today = local_day(window.zone, window.now)
    for day in days_between(max(window.first, live_from), min(window.last, today)):
        start, end = day_window(window.zone, day)
        live = await repository.counts_of_window(db, ws, start, end, families)
        out += [(day, c) for c in live]
    if window.channel_id is not None:
        out = [(d, c) for d, c in out if c.channel_id == window.channel_id]
    return out


def by_bucket(
    rows: list[tuple[date, Count]], granularity: Granularity
) -> dict[date, dict[tuple[str, str], int]]:
    """{bucket: {(metric, key): total}} summed over channels."""
    out: dict[date, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for day, count in rows:
        out[bucket_of(day, granularity)][(count.metric, count.key)] += count.value
    return out


def totals(rows: list[tuple[date, Count]], metric: str) -> dict[str, int]:
    """{key: total over the range} of one metric."""
    out: dict[str, int] = defaultdict(int)
    for _, count in rows:
        if count.metric == metric:
            out[count.key] += count.value
    return dict(out)


async def _live_facts(db: AsyncSession, window: Window) -> list[Facts]:
    """The facts of the range's cycles the job has not derived yet (opened since its last
    pass, or resolved since), derived now and not written: a read changes nothing."""
    start, end = window.bounds()
    missing = await repository.cycles_missing_facts(
        db, window.workspace.id, start, end, awaiting=False
    )
    hours = hours_of(window.workspace)
    out: list[Facts] = []
    for cycle in missing:
        if window.channel_id is not None and cycle.channel_id != window.channel_id:
            continue
        f = facts_of(hours, cycle)
        out.append(
            (cycle.opened_at, f["first_responder_id"], cycle.team_id, *(f[m] for m in MEASURES))
        )
    return out


async def _stats_by(db: AsyncSession, window: Window, by: By) -> dict[Any, Stats]:
    start, end = window.bounds()
    scope = Scope(
        window.workspace.id, start, end, window.channel_id, window.zone, window.granularity
    )
    live = await _live_facts(db, window)
    return await duration_stats(db, scope, by, lambda day: bucket_of(day, window.granularity), live)


# -- the five reports, each a list of flat rows (the JSON items and the CSV lines) --------


Row = dict[str, object]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def overview(db: AsyncSession, window: Window) -> list[Row]:
    """Every count of the range, one row per period, channel, metric and key."""
    totals_: dict[tuple[date, str, str, str], int] = defaultdict(int)
    for day, c in await counts(db, window):
        channel = str(c.channel_id) if c.channel_id else ""
        totals_[(bucket_of(day, window.granularity), channel, c.metric, c.key)] += c.value
    return [
        {"period": p.isoformat(), "channel_id": ch, "metric": m, "key": k, "value": v}
        for (p, ch, m, k), v in sorted(totals_.items())
    ]


async def conversations(db: AsyncSession, window: Window) -> list[Row]:
    """Per period: opened (new, reopened), resolved, and the first response and resolution
    times (median, p90; wall-clock and within business hours) of the cycles opened."""
    buckets = by_bucket(await counts(db, window, ("cycles",)), window.granularity)
    times = await _stats_by(db, window, "period")
    periods = sorted(
        {bucket_of(day, window.granularity) for day in days_between(window.first, window.last)}
    )
    rows: list[Row] = []
    for period in periods:
        got, stats = buckets.get(period, {}), times.get(period, {})
        reopened = got.get(("conversations_opened", "reopened"), 0)
        row: Row = {
            "period": period.isoformat(),
            "opened": got.get(("conversations_opened", "new"), 0) + reopened,
            "reopened": reopened,
            "resolved": got.get(("conversations_resolved", ""), 0),
        }
        row |= {column: stats.get(column) for column in _STAT_COLUMNS}
        rows.append(row)
    return rows


async def agents(db: AsyncSession, window: Window) -> list[Row]:
    """Per agent and per team: replies, conversations handled (cycles they answered first;
    a team's through the conversation's team), and the median first response of those."""
    rows_ = await counts(db, window, ("messages",))
    rows: list[Row] = []
    for kind, metric, by in (("agent", "agent_replies", "agent"), ("team", "team_replies", "team")):
        replies = totals(rows_, metric)
        handled = await _stats_by(db, window, by)  # type: ignore[arg-type]
        for who in sorted(set(replies) | set(handled)):
            stats = handled.get(who, {})
            rows.append(
                {
                    "kind": kind,
                    "id": who,
                    "replies": replies.get(who, 0),
                    "conversations": stats.get("answered", 0),
                    "first_response_seconds_median": stats.get("first_response_seconds_median"),
                }
            )
    rows.sort(key=lambda r: (str(r["kind"]), -int(r["replies"]), str(r["id"])))  # type: ignore[call-overload]
    return rows


async def bots(db: AsyncSession, window: Window) -> list[Row]:
    """Per bot and version: cycles started, completed, handed off, contained; the
    containment rate; the nodes where the others stopped."""
    rows_ = await counts(db, window, ("cycles",))
    started = totals(rows_, "bot_started")
    completed, handoff = totals(rows_, "bot_completed"), totals(rows_, "bot_handoff")
    contained = totals(rows_, "bot_contained")
    drops: dict[str, dict[str, int]] = defaultdict(dict)
    for key, n in totals(rows_, "bot_dropoff").items():
        bot_id, version, node = key.split(":", 2)
        drops[f"{bot_id}:{version}"][node or "(start)"] = n
    rows: list[Row] = []
    for key in sorted(started):
        bot_id, version = key.split(":", 1)
        rows.append(
            {
                "bot_id": bot_id,
                "version_id": version,
                "started": started[key],
                "completed": completed.get(key, 0),
                "handed_off": handoff.get(key, 0),
                "contained": contained.get(key, 0),
                "containment_rate": _rate(contained.get(key, 0), started[key]),
                "dropoff_nodes": ";".join(
                    f"{n}={c}" for n, c in sorted(drops[key].items(), key=lambda x: -x[1])
                ),
            }
        )
    return rows


async def broadcasts(db: AsyncSession, window: Window) -> list[Row]:
    """Per broadcast started in the range: recipients sent, delivered, read, failed and
    replied, and their rates (of the recipients sent to)."""
    start, end = window.bounds()
    found = await repository.broadcast_figures(
        db, window.workspace.id, start, end, window.channel_id
    )
    rows: list[Row] = []
    for b in found:
        s = b.by_status
        read = s.get("read", 0)
        delivered = s.get("delivered", 0) + read  # a read message was delivered
        sent = s.get("sent", 0) + delivered
        failed = s.get("failed", 0)
        rows.append(
            {
                "broadcast_id": str(b.id),
                "name": b.name,
                "status": b.status,
                "recipients": sum(s.values()),
                "sent": sent,
                "delivered": delivered,
                "read": read,
                "failed": failed,
                "replied": b.replied,
                "delivered_rate": _rate(delivered, sent),
                "read_rate": _rate(read, sent),
                "failed_rate": _rate(failed, sent + failed),
                "replied_rate": _rate(b.replied, sent),
            }
        )
    return rows


REPORTS = {
    "overview": overview,
    "conversations": conversations,
    "agents": agents,
    "bots": bots,
    "broadcasts": broadcasts,
}

_STAT_COLUMNS = [
    f"{what}_{stat}"
    for what in (
        "first_response_seconds",
        "first_response_business_seconds",
        "resolution_seconds",
        "resolution_business_seconds",
    )
    for stat in ("median", "p90")
]

#: Each report's columns, in order (the CSV header).
COLUMNS: dict[str, list[str]] = {
    "overview": ["period", "channel_id", "metric", "key", "value"],
    "conversations": ["period", "opened", "reopened", "resolved", *_STAT_COLUMNS],
    "agents": ["kind", "id", "replies", "conversations", "first_response_seconds_median"],
    "bots": [
        "bot_id",
        "version_id",
        "started",
        "completed",
        "handed_off",
        "contained",
        "containment_rate",
        "dropoff_nodes",
    ],
    "broadcasts": [
        "broadcast_id",
        "name",
        "status",
        "recipients",
        "sent",
        "delivered",
        "read",
        "failed",
        "replied",
        "delivered_rate",
        "read_rate",
        "failed_rate",
        "replied_rate",
    ],
}
