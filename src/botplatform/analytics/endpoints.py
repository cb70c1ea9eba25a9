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


def _range(zone: str, first: date | None, last: date | None) -> tuple[date, date]:
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


def wants_csv(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    return "text/csv" in request.headers.get("accept", "")


@router.get(
    "/analytics/{report}",
    response_model=Envelope[ReportOut],
    responses={200: {"content": {"text/csv": {}}, "description": "The report (JSON or CSV)"}},
)
async def get_report(
    access: AnalyticsRead,
    report: ReportName,
    request: Request,
    db: DbSession,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    channel_id: Annotated[uuid.UUID | None, Query()] = None,
    granularity: Annotated[Granularity, Query()] = "day",
    format_: Annotated[str | None, Query(alias="format", pattern="^(json|csv)$")] = None,
) -> Any:
    """A report of the workspace's figures over local dates `from`..`to` (default: the last
    30 days), optionally one channel's: `overview` (every count, by period, channel, metric
    and key), `conversations` (opened, reopened, resolved, first response and resolution
    times), `agents` (per agent and team), `bots` (per bot and version: containment,
    drop-off nodes), `broadcasts` (per broadcast started in the range: delivery, read,
    failure and reply rates). CSV with `Accept: text/csv` or `?format=csv`: the same rows."""
    workspace = await db.get(Workspace, access.workspace_id)
    assert workspace is not None  # access was granted to it
    first, last = _range(workspace.timezone or "UTC", from_, to)
    window = reports.Window(workspace, first, last, channel_id, granularity)
    rows = await reports.REPORTS[report](db, window)
    columns = reports.COLUMNS[report]
    if wants_csv(request, format_):
        name = f"analytics-{report}-{first}-{last}.csv"
        return StreamingResponse(
            _csv_lines(columns, rows),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
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
