from __future__ import annotations

from fastapi import APIRouter, Request, status

from botplatform.audit.dependencies import Audit
from botplatform.auth import recovery, service, two_factor
from botplatform.auth.dependencies import CurrentUser
from botplatform.auth.schemas import (
    LoginIn,
    LoginOut,
    LogoutAllOut,
    MembershipSummary,
    MeOut,
    PasswordForgotIn,
    PasswordResetIn,
    RecoveryCodesOut,
    RegisterIn,
    TwoFactorChallenge,
    TwoFactorDisableIn,
    TwoFactorEnableIn,
    TwoFactorSetupOut,
    TwoFactorVerifyIn,
)
from botplatform.authz.permissions import Role
from botplatform.db import DbSession
from botplatform.email import templates
from botplatform.email.service import queue_email
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Unauthorized
from botplatform.kit.middleware import request_ip
from botplatform.runtime import RuntimeDep
from botplatform.workspace import repository as workspace_repository

router = APIRouter(tags=["auth"])


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(
    body: RegisterIn, db: DbSession, runtime: RuntimeDep, audit: Audit
) -> Envelope[LoginOut]:
    """Creates an account and logs it in. Passwords: at least 12 characters, not a common
    password, not containing the email address."""
    user = await service.register(db, runtime, body)
    await audit.log("auth.register", target_type="user", target_id=user.id, user=user)
    return ok(await service.start_session(db, runtime, user), "Account created")


@router.post("/auth/login")
async def login(
    body: LoginIn, request: Request, db: DbSession, runtime: RuntimeDep, audit: Audit
) -> Envelope[LoginOut | TwoFactorChallenge]:
    """Exchanges email and password for a bearer token tied to a server-side session — or,
    when the account has 2FA, for a challenge to complete at /auth/2fa/verify."""
    ip = request_ip(request.scope)
    user = await service.authenticate(db, runtime, body.email, body.password, ip)
    if user.has_two_factor:
        challenge = await service.start_challenge(runtime, user)
        await audit.log("auth.password_ok", target_type="user", target_id=user.id, user=user)
        return ok(challenge, "Enter your authentication code")
    await audit.log("auth.login", target_type="user", target_id=user.id, user=user)
    return ok(await service.start_session(db, runtime, user), "Logged in")


@router.post("/auth/2fa/verify")
async def verify_two_factor(
    body: TwoFactorVerifyIn, db: DbSession, runtime: RuntimeDep, audit: Audit
) -> Envelope[LoginOut]:
    """Completes a login with a TOTP code or one of the recovery codes."""
    user = await service.finish_challenge(
        db, runtime, body.challenge_token, body.code, body.recovery_code
    )
    method = "recovery_code" if body.recovery_code and not body.code else "totp"
    await audit.log(
        "auth.login",
        target_type="user",
        target_id=user.id,
        user=user,
        changes={"second_factor": method},
    )
    return ok(await service.start_session(db, runtime, user), "Logged in")


@router.post("/auth/logout")
async def logout(principal: CurrentUser, runtime: RuntimeDep, audit: Audit) -> Envelope[None]:
    """Ends this session; its token stops working at once."""
    await runtime.sessions.revoke_hash(principal.user.id, principal.session_hash)
    await audit.log("auth.logout", target_type="user", target_id=principal.user.id)
    return ok(None, "Logged out")


@router.post("/auth/logout-all")
async def logout_all(
    principal: CurrentUser, runtime: RuntimeDep, audit: Audit
) -> Envelope[LogoutAllOut]:
    """Ends every session of the caller, on every device."""
    ended = await runtime.sessions.revoke_all(principal.user.id)
    await audit.log(
        "auth.logout_all",
        target_type="user",
        target_id=principal.user.id,
        changes={"sessions_ended": ended},
    )
    return ok(LogoutAllOut(sessions_ended=ended), "Logged out everywhere")


@router.post("/auth/2fa/setup")
async def setup_two_factor(
    principal: CurrentUser, db: DbSession, audit: Audit
) -> Envelope[TwoFactorSetupOut]:
    """Starts 2FA: a new secret, its otpauth:// URI and a QR code to scan. Nothing changes
    for logins until /auth/2fa/enable confirms a code."""
    provisioning = two_factor.start_setup(principal.user)
    await audit.log("auth.2fa_setup", target_type="user", target_id=principal.user.id)
    out = TwoFactorSetupOut(
        secret=provisioning.secret,
        otpauth_uri=provisioning.otpauth_uri,
        qr_svg=provisioning.qr_svg,
    )
    return ok(out, "Scan the QR code, then confirm a code")


async def _notify_two_factor(db: DbSession, email: str, enabled: bool) -> None:
    subject, text, html = templates.two_factor_changed(enabled)
    await queue_email(db, kind="two_factor", to=email, subject=subject, text=text, html=html)


@router.post("/auth/2fa/enable")
async def enable_two_factor(
    body: TwoFactorEnableIn,
    principal: CurrentUser,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[RecoveryCodesOut]:
    """Turns 2FA on with a valid code; answers the 10 one-time recovery codes (shown once)."""
    codes = await two_factor.enable(db, runtime.kv, principal.user, body.code)
    await _notify_two_factor(db, principal.user.email, True)
    await audit.log("auth.2fa_enabled", target_type="user", target_id=principal.user.id)
    return ok(RecoveryCodesOut(recovery_codes=codes), "Two-factor authentication is on")


@router.post("/auth/2fa/disable")
async def disable_two_factor(
    body: TwoFactorDisableIn,
    principal: CurrentUser,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[None]:
    """Turns 2FA off; needs the password and a current code (or a recovery code)."""
    user = principal.user
    password_ok = await runtime.passwords.verify(user.password_hash, body.password)
    if not password_ok or not await two_factor.checked_second_factor(
        db, runtime.kv, runtime.settings, user, body.code, body.recovery_code
    ):
        raise Unauthorized("The password or code is not valid.", code="invalid_credentials")
    await two_factor.disable(db, user)
    await _notify_two_factor(db, user.email, False)
    await audit.log("auth.2fa_disabled", target_type="user", target_id=user.id)
    return ok(None, "Two-factor authentication is off")


FORGOT_MESSAGE = "If an account exists for that email, a reset link is on its way."


@router.post("/auth/password/forgot")
async def forgot_password(
    body: PasswordForgotIn, db: DbSession, runtime: RuntimeDep, audit: Audit
) -> Envelope[None]:
    """Emails a password-reset link. The answer is the same whether or not the account
    exists."""
    user = await recovery.request_reset(db, runtime, body.email)
    await audit.log(
        "auth.password_reset_requested", target_type="user", target_id=user.id if user else None
    )
    return ok(None, FORGOT_MESSAGE)


@router.post("/auth/password/reset")
async def reset_password(
    body: PasswordResetIn, db: DbSession, runtime: RuntimeDep, audit: Audit
) -> Envelope[None]:
    """Sets a new password from an emailed link (plus a 2FA code when the account has 2FA)
    and ends every session of the account."""
    user = await recovery.reset_password(
        db, runtime, body.token, body.password, body.code, body.recovery_code
    )
    await audit.log(
        "auth.password_reset",
        target_type="user",
        target_id=user.id,
        user=user,
        changes={"password": "changed"},
    )
    return ok(None, "Password changed; log in again")


@router.get("/me")
async def me(principal: CurrentUser, db: DbSession) -> Envelope[MeOut]:
    """The caller and the workspaces it belongs to."""
    rows = await workspace_repository.list_for_user(db, principal.user.id)
    workspaces = [
        MembershipSummary(
            workspace_id=workspace.id,
            workspace_name=workspace.name,
            workspace_slug=workspace.slug,
            role=Role(membership.role),
        )
        for workspace, membership in rows
    ]
    return ok(MeOut(user=service.user_out(principal.user), workspaces=workspaces))
