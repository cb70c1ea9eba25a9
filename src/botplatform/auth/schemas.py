from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from botplatform.auth.passwords import MAX_LENGTH
from botplatform.authz.permissions import Role
from botplatform.kit.schemas import InputModel

Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LENGTH)]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=20)]
Token = Annotated[str, StringConstraints(min_length=10, max_length=2000)]


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
    two_factor_enabled: bool
    created_at: datetime


class LoginOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name, not a secret
    expires_at: datetime = Field(description="Latest end of the session; idle sessions end sooner")
    user: UserOut


class TwoFactorChallenge(BaseModel):
    two_factor_required: Literal[True] = True
    challenge_token: str = Field(description="Send it to /auth/2fa/verify with a code")
    expires_at: datetime


class TwoFactorVerifyIn(InputModel):
    challenge_token: Token
    code: Code | None = None
    recovery_code: Code | None = None


class TwoFactorSetupOut(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as a QR code (SVG)")


class TwoFactorEnableIn(InputModel):
    code: Code


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Each works once; shown only now")


class TwoFactorDisableIn(InputModel):
    password: Password
    code: Code | None = None
    recovery_code: Code | None = None


class PasswordForgotIn(InputModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320)]


class PasswordResetIn(InputModel):
    token: Token
    password: Password
    code: Code | None = None
    recovery_code: Code | None = None


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
