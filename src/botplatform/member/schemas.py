from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from botplatform.authz.permissions import Role
from botplatform.kit.schemas import InputModel


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    joined_at: datetime


class MemberUpdate(InputModel):
    role: Role
