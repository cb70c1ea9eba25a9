from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from botplatform.kit.schemas import InputModel

Quota = Annotated[int | None, Field(ge=0, le=2_000_000_000)]
PlanName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]


class PlanOut(BaseModel):
    name: str
    messages_per_month: int | None = Field(description="Inbound + outbound; None: unlimited")
    channels: int | None
    members: int | None
    bots: int | None
    broadcasts_per_month: int | None
    recipients_per_broadcast: int | None
    recipients_per_month: int | None = Field(description="All broadcasts of a month together")
    ai_tokens_per_month: int | None
    api_requests_per_minute: int | None = Field(description="Per workspace, for its API keys")
    retention_days: int | None = Field(description="Retention ceiling; None: unlimited")


class PlanUpdate(InputModel):
    """Only the fields sent change; `null` makes a quota unlimited."""

    messages_per_month: Quota = None
    channels: Quota = None
    members: Quota = None
    bots: Quota = None
    broadcasts_per_month: Quota = None
    recipients_per_broadcast: Quota = None
    recipients_per_month: Quota = None
    ai_tokens_per_month: Quota = None
    api_requests_per_minute: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    retention_days: Annotated[int | None, Field(ge=1, le=36_500)] = None


class WorkspacePlanChange(InputModel):
    plan: PlanName = Field(description="The name of an existing plan")


class WorkspacePlanOut(BaseModel):
    workspace_id: str
    plan: str
