from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class QuotaUse(BaseModel):
    name: str = Field(description="e.g. messages_per_month, channels")
    limit: int | None = Field(description="None: unlimited")
    used: int | None = Field(description="None where nothing is counted (rates, ceilings)")
    remaining: int | None = Field(description="None: unlimited or not counted")


class UsageOut(BaseModel):
    plan: str
    period: str = Field(description="The calendar month (UTC) counted, YYYY-MM")
    period_start: datetime
    period_end: datetime = Field(description="When the monthly counters start again")
    messages_inbound: int
    messages_outbound: int
    quotas: list[QuotaUse]
