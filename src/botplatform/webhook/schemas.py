from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from botplatform.events.catalog import ALL, EVENT_TYPES, check_names
from botplatform.kit.schemas import InputModel

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


def _known_types(value: list[str]) -> list[str]:
    check_names(value, [ALL, *EVENT_TYPES])
    return sorted(set(value))


class EndpointCreate(InputModel):
    url: Url = Field(description="http(s) URL; private, loopback and metadata addresses refused")
    event_types: list[str] = Field(
        min_length=1, max_length=50, description='Event types to receive, or ["*"] for all'
    )
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    enabled: bool = True

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return _known_types(value)


class EndpointUpdate(InputModel):
    url: Url | None = None
    event_types: list[str] | None = Field(None, min_length=1, max_length=50)
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    enabled: bool | None = Field(None, description="Enabling again clears the disabled state")

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _known_types(value)


class RotateSecret(InputModel):
    previous_valid_seconds: int | None = Field(
        None,
        ge=0,
        le=7 * 24 * 3600,
        description="How long the old secret keeps signing too (default "
        "WEBHOOK_SECRET_OVERLAP_SECONDS; 0 ends it at once)",
    )


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    secret_hint: str = Field(description="The secret's last characters, to recognise it")
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(BaseModel):
    endpoint: EndpointOut
    secret: str = Field(description="Shown once: store it to verify signatures")


class AttemptOut(BaseModel):
    number: int
    started_at: datetime
    status_code: int | None
    latency_ms: int
    response_body: str | None
    error: str | None
    succeeded: bool


class DeliveryOut(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    replay_of_id: uuid.UUID | None
    created_at: datetime


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any]
    attempts: list[AttemptOut]


class EventTypeOut(BaseModel):
    type: str
    version: int
    json_schema: dict[str, Any] = Field(alias="schema")
