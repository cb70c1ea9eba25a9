from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from botplatform.analytics import reports
from botplatform.analytics.schemas import MAX_DAYS, Granularity, ReportName, ReportOut
from botplatform.analytics.timing import local_day
from botplatform.authz.dependencies import AnalyticsRead
from botplatform.db import DbSession
from botplatform.kit.clock import utcnow
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Unprocessable
from botplatform.models import Workspace

router = APIRouter(prefix="/workspaces/{ws}", tags=["analytics"])


def date_range(zone: str, first: date | None, last: date | None) -> tuple[date, date]:
    """Defaults: the last 30 local days up to today."""
    last = last or local_day(zone, utcnow())
    first = first or last - timedelta(days=29)
    if first > last:
        raise Unprocessable(
            "`from` must not be after `to`.", code="invalid_range", details={"field": "from"}
        )
    if (last - first).days >= MAX_DAYS:
        raise Unprocessable(
            f"A range is at most {MAX_DAYS} days.",
            code="range_too_long",
            details={"field": "to", "max_days": MAX_DAYS},
        )
    return first, last


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting like a formula is not run by a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _csv_lines(columns: list[str], rows: list[reports.Row]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for line in [columns, *([_cell(row.get(c)) for c in columns] for row in rows)]:
        writer.writerow(line)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_response(report: str, window: reports.Window, rows: list[reports.Row]) -> StreamingResponse:
    """The report's rows as a CSV download, streamed line by line."""
    name = f"analytics-{report}-{window.first}-{window.last}.csv"
    return StreamingResponse(
        _csv_lines(reports.COLUMNS[report], rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def wants_csv(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    return "text/csv" in request.headers.get("accept", "")


async def _report(
    report: ReportName,
    access: AnalyticsRead,
    request: Request,
    db: DbSession,
    first_: date | None,
    last_: date | None,
    channel_id: uuid.UUID | None,
    granularity: Granularity,
    format_: str | None,
) -> Any:
    workspace = await db.get(Workspace, access.workspace_id)
    assert workspace is not None  # access was granted to it
    first, last = date_range(workspace.timezone or "UTC", first_, last_)
    window = reports.Window(workspace, first, last, channel_id, granularity)
    rows = await reports.REPORTS[report](db, window)
    columns = reports.COLUMNS[report]
    if wants_csv(request, format_):
        return csv_response(report, window, rows)
    out = ReportOut(
        report=report,
        timezone=window.zone,
        from_=first.isoformat(),
        to=last.isoformat(),
        granularity=granularity,
        channel_id=str(channel_id) if channel_id else None,
        columns=columns,
        rows=rows,
    )
    return ok(out)


From = Annotated[
    date | None, Query(alias="from", description="First local date (default: 29 days before `to`)")
]
To = Annotated[date | None, Query(description="Last local date, included (default: today)")]
ChannelFilter = Annotated[uuid.UUID | None, Query(description="Only this channel's figures")]
GranularityQuery = Annotated[Granularity, Query()]
Format = Annotated[
    str | None,
    Query(alias="format", pattern="^(json|csv)$", description="csv: as `Accept: text/csv`"),
]
_CSV = {200: {"content": {"text/csv": {}}, "description": "The report (JSON, or CSV)"}}


def _route(report: ReportName, doc: str) -> None:
    async def endpoint(
        access: AnalyticsRead,
        request: Request,
        db: DbSession,
        from_: From = None,
        to: To = None,
        channel_id: ChannelFilter = None,
        granularity: GranularityQuery = "day",
        format_: Format = None,
    ) -> Any:
        return await _report(
            report, access, request, db, from_, to, channel_id, granularity, format_
        )

    endpoint.__name__ = f"analytics_{report}"
    endpoint.__doc__ = doc + _COMMON
    router.add_api_route(
        f"/analytics/{report}",
        endpoint,
        methods=["GET"],
        response_model=Envelope[ReportOut],
        responses=_CSV,  # type: ignore[arg-type]
    )


_COMMON = (
    " Over the local dates `from`..`to` of the workspace's time zone (default: the last 30"
    " days), optionally one channel's. CSV with `Accept: text/csv` or `?format=csv`: the"
    " same rows, streamed."
)

_route(
    "overview",
    "Every count of the range, one row per period, channel, metric and key: messages in and"
    " out by type, outbound by status, conversations opened/resolved, agent and team replies,"
    " bot runs, automation runs by outcome, opt-outs and opt-ins by source, AI answers by"
    " outcome (docs/analytics.md lists the metrics).",
)
_route(
    "conversations",
    "Per period: conversations opened (of which reopened) and resolved, and the first"
    " response and resolution times (median, p90; wall-clock and within business hours).",
)
_route(
    "agents",
    "Per agent and per team: replies, conversations handled (answered first), median first"
    " response.",
)
_route(
    "bots",
    "Per bot and version: conversations started, completed, handed off, contained"
    " (resolved without a human), containment rate, the nodes where users dropped off.",
)
_route(
    "broadcasts",
    "Per broadcast started in the range: recipients sent, delivered, read, failed, replied,"
    " and their rates.",
)
