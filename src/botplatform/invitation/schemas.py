from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field

from botplatform.authz.permissions import Role
from botplatform.kit.schemas import InputModel

InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]


class InvitationCreate(InputModel):
    email: EmailStr
    role: Role = Role.AGENT


class InvitationOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    status: InvitationStatus
    expires_at: datetime
    created_at: datetime
    invited_by_id: uuid.UUID | None


class InvitationCreated(BaseModel):
    invitation: InvitationOut
    link: str = Field(description="Single-use link for the invitee; shown only now")


class InvitationAccept(InputModel):
    token: str = Field(min_length=10, max_length=1000)


class AcceptedInvitation(BaseModel):
    workspace_id: uuid.UUID
    workspace_name: str
    role: Role
