from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

from botplatform.authz.permissions import Permission
from botplatform.kit.schemas import InputModel


class ApiKeyCreate(InputModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    scopes: list[Permission] = Field(min_length=1, description="A subset of your permissions")
    expires_at: datetime | None = Field(None, description="Optional; must be in the future")
    allowed_ips: list[str] = Field(
        default_factory=list, max_length=50, description="CIDR ranges; empty allows any"
    )

    @field_validator("allowed_ips")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(entry.strip(), strict=False)) for entry in value]
        except ValueError as exc:
            raise ValueError(f"not an IP address or CIDR range: {exc}") from exc


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's visible start, to recognise it")
    scopes: list[str]
    allowed_ips: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None
    revoked_at: datetime | None
    created_by_id: uuid.UUID | None
    created_at: datetime


class ApiKeyCreated(BaseModel):
    api_key: ApiKeyOut
    key: str = Field(description="The secret key — shown only now; store it safely")
