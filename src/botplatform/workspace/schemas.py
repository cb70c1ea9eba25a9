from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from botplatform.authz.permissions import Permission, Role
from botplatform.kit.schemas import InputModel

WorkspaceName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
Slug = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=2, max_length=64, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
    ),
]


class WorkspaceCreate(InputModel):
    name: WorkspaceName
    slug: Slug | None = Field(None, description="URL-friendly name; derived from `name` if absent")


class WorkspaceUpdate(InputModel):
    name: WorkspaceName | None = None
    slug: Slug | None = None
    require_2fa: bool | None = Field(
        None, description="Owners only: members without 2FA are refused until they enable it"
    )


class WorkspaceOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    plan: str
    require_2fa: bool
    created_at: datetime
    role: Role = Field(description="The caller's role in this workspace")
    permissions: list[Permission] = Field(description="What the caller may do here")
