from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

ReportName = Literal["overview", "conversations", "agents", "bots", "broadcasts"]
Granularity = Literal["day", "week", "month"]
#: The longest range one request may ask for.
MAX_DAYS = 400


class ReportOut(BaseModel):
    """One report: the range asked (local dates of the workspace's time zone) and its rows
    (the same rows, column for column, as the CSV export)."""

    report: ReportName
    timezone: str = Field(examples=["Europe/Paris"])
    from_: str = Field(alias="from", examples=["2026-11-01"])
    to: str = Field(examples=["2026-11-30"])
    granularity: Granularity
    channel_id: str | None = None
    columns: list[str]
    rows: list[dict[str, Any]]

    model_config = {"populate_by_name": True}
