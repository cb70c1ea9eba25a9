from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from botplatform.kit.schemas import InputModel

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
MemberIds = Annotated[list[uuid.UUID], Field(max_length=200)]


class TeamCreate(InputModel):
    name: Name
    description: Description = ""
    member_ids: MemberIds = Field(
        default_factory=list, description="Workspace members (user ids) in the team"
    )


class TeamUpdate(InputModel):
    name: Name | None = None
    description: Description | None = None
    member_ids: MemberIds | None = Field(None, description="Replaces the team's members")


class TeamOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    member_ids: list[uuid.UUID]
    created_at: datetime
