from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from botplatform.authz.permissions import Role
from botplatform.kit.schemas import InputModel

Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class RegisterIn(InputModel):
    email: EmailStr
    password: Password
    name: PersonName = ""


class LoginIn(InputModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320)]
    password: Password


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    is_superadmin: bool
    created_at: datetime


class LoginOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name, not a secret
    expires_at: datetime = Field(description="Latest end of the session; idle sessions end sooner")
    user: UserOut


class MembershipSummary(BaseModel):
    workspace_id: uuid.UUID
    workspace_name: str
    workspace_slug: str
    role: Role


class MeOut(BaseModel):
    user: UserOut
    workspaces: list[MembershipSummary]


class LogoutAllOut(BaseModel):
    sessions_ended: int
