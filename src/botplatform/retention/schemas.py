from __future__ import annotations

from pydantic import BaseModel, Field

from botplatform.kit.schemas import InputModel

MIN_DAYS, MAX_DAYS = 1, 3650


class RetentionIn(InputModel):
    retention_days: int | None = Field(
        None,
        ge=MIN_DAYS,
        le=MAX_DAYS,
        description="Messages older than this many days are deleted; null keeps them forever",
    )
    archive_before_delete: bool = Field(
        False, description="Write the messages to storage (gzipped JSON lines) before deleting"
    )


class RetentionOut(BaseModel):
    retention_days: int | None
    archive_before_delete: bool
    plan_ceiling_days: int | None = Field(
        description="The most days the workspace's plan allows; null: no ceiling is applied "
        "(plans are not built yet)"
    )
