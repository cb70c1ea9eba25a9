"""The Analytics page (`analytics:read`, as the API): the range, channel and granularity
chosen in a form; messages per day stacked by channel and the response-time trend drawn by
uPlot from our static folder; the bots' containment funnels, the broadcasts' funnels and the
agents' leaderboard as tables; each report downloadable as CSV. The numbers are the API's
reports, computed by the same functions."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from botplatform.analytics import reports, repository
from botplatform.analytics.endpoints import csv_response, date_range
from botplatform.analytics.schemas import ReportName
from botplatform.authz.permissions import Permission
from botplatform.channel import endpoints as channel_api
from botplatform.dashboard.web import Page, PageRoute, ws_page
from botplatform.kit.errors import AppError
from botplatform.kit.pagination import PageParams
from botplatform.models import Workspace

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

AnalyticsPage = Annotated[Page, ws_page(Permission.ANALYTICS_READ)]
GRANULARITIES = ("day", "week", "month")
ALL = PageParams(limit=200, cursor=None)


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise AppError(f"{value!r} is not a date (YYYY-MM-DD).", code="invalid_date") from None


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        raise AppError("Unknown channel.", code="invalid_channel") from None


async def _window(page: Page, request: Request) -> reports.Window:
    """The form's choices as a report window; a bad value is an AppError to show."""
    query = request.query_params
    workspace = await page.db.get(Workspace, page.ws)
    assert workspace is not None
    first, last = date_range(
        workspace.timezone or "UTC", _date(query.get("from")), _date(query.get("to"))
    )
    granularity = query.get("granularity") or "day"
    if granularity not in GRANULARITIES:
        granularity = "day"
    return reports.Window(workspace, first, last, _uuid(query.get("channel")), granularity)  # type: ignore[arg-type]


def _messages_chart(
    overview: list[reports.Row], periods: list[str], names: dict[str, str]
) -> dict[str, Any]:
    """Messages (in + out) per period and channel, for the stacked chart."""
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in overview:
        if row["metric"] in ("messages_in", "messages_out"):
            per[str(row["channel_id"])][str(row["period"])] += int(row["value"])  # type: ignore[call-overload]
    series = [
        {"label": names.get(channel, "Other"), "values": [per[channel][p] for p in periods]}
        for channel in sorted(per, key=lambda c: names.get(c, c))
    ]
    return {"periods": periods, "series": series}


def _response_chart(conversations: list[reports.Row]) -> dict[str, Any]:
    def minutes(value: object) -> float | None:
        return None if value is None else round(float(value) / 60, 1)  # type: ignore[arg-type]

    return {
        "periods": [row["period"] for row in conversations],
        "median": [minutes(row["first_response_seconds_median"]) for row in conversations],
        "p90": [minutes(row["first_response_seconds_p90"]) for row in conversations],
    }


async def _context(page: Page, window: reports.Window) -> dict[str, Any]:
    channels = (await channel_api.list_channels(page.granted, page.db, ALL, page.runtime)).data
    names = {str(c.id): c.name for c in channels.items}
    overview = await reports.overview(page.db, window)
    conversations = await reports.conversations(page.db, window)
    periods = [str(row["period"]) for row in conversations]
    bot_names, version_numbers = await repository.bot_labels(page.db, page.ws)
    return {
        "window": window,
        "bot_names": bot_names,
        "version_numbers": version_numbers,
        "channels": channels.items,
        "conversations": conversations,
        "totals": _totals(overview),
        "agents": await reports.agents(page.db, window),
        "bots": await reports.bots(page.db, window),
        "broadcasts": await reports.broadcasts(page.db, window),
        "names": await repository.display_names(page.db, page.ws),
        "charts": {
            "messages": _messages_chart(overview, periods, names),
            "response": _response_chart(conversations),
        },
    }


def _totals(overview: list[reports.Row]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for row in overview:
        out[str(row["metric"])] += int(row["value"])  # type: ignore[call-overload]
    return dict(out)


@router.get("/analytics")
async def analytics(page: AnalyticsPage, request: Request) -> Response:
    try:
        window = await _window(page, request)
        error = None
    except AppError as exc:
        workspace = await page.db.get(Workspace, page.ws)
        assert workspace is not None
        first, last = date_range(workspace.timezone or "UTC", None, None)
        window, error = reports.Window(workspace, first, last), exc.message
    context = await _context(page, window)
    return page.render(
        "app/analytics.html",
        422 if error else 200,
        error=error,
        granularities=GRANULARITIES,
        query=request.url.query,
        **context,
    )


@router.get("/analytics/{report}.csv")
async def analytics_csv(page: AnalyticsPage, request: Request, report: ReportName) -> Response:
    window = await _window(page, request)
    return csv_response(report, window, await reports.REPORTS[report](page.db, window))
