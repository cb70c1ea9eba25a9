from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from botplatform.authz.permissions import Role
from botplatform.kit.schemas import InputModel


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    joined_at: datetime
    channel_ids: list[uuid.UUID] = Field(
        default_factory=list, description="The channels (inboxes) this member is assigned to"
    )
    channel_scoped: bool = Field(
        False,
        description="True when the role sees only the assigned channels (agents); other "
        "roles see every channel whatever their assignment",
    )


class MemberUpdate(InputModel):
    role: Role


class MemberChannels(InputModel):
    channel_ids: list[uuid.UUID] = Field(
        max_length=500, description="The complete list of channels to assign (replaces it)"
    )
