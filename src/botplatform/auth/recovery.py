"""Password reset by a signed, single-use, expiring emailed link. The link carries a
fingerprint of the current password hash, so it dies as soon as the password changes; it
never bypasses 2FA; and a reset ends every session of the account."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.auth import two_factor
from botplatform.auth.passwords import enforce_policy
from botplatform.auth.service import find_by_email
from botplatform.email import templates
from botplatform.email.service import queue_email
from botplatform.kit.errors import BadRequest, Gone, Unauthorized
from botplatform.kit.tokens import InvalidToken, LinkSigner
from botplatform.models import User
from botplatform.runtime import Runtime


def _signer(runtime: Runtime) -> LinkSigner:
    return LinkSigner(runtime.settings.signing_key, "password-reset")


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:20]


def reset_link(runtime: Runtime, user: User) -> str:
    """A link that sets a new password once, until PASSWORD_RESET_TTL_SECONDS pass: emailed
    by "forgot password", printed by `botplatform users reset-password`."""
    token = _signer(runtime).sign({"u": str(user.id), "f": _fingerprint(user)})
    return f"{runtime.settings.app_url.rstrip('/')}/app/password/reset?token={token}"


async def request_reset(db: AsyncSession, runtime: Runtime, email: str) -> User | None:
    """Emails a reset link if the account exists; the caller answers the same either way."""
    user = await find_by_email(db, email)
    if user is None or not user.is_active:
        return None
    link = reset_link(runtime, user)
    minutes = runtime.settings.password_reset_ttl_seconds // 60
    subject, text, html = templates.password_reset(link, minutes)
    await queue_email(
        db, kind="password_reset", to=user.email, subject=subject, text=text, html=html
    )
    return user


async def reset_password(
    db: AsyncSession,
    runtime: Runtime,
    token: str,
    password: str,
    code: str | None,
    recovery_code: str | None,
) -> User:
    try:
        claims = _signer(runtime).load(token, runtime.settings.password_reset_ttl_seconds)
        user = await db.get(User, uuid.UUID(claims["u"]))
    except InvalidToken as exc:
        if exc.reason == "expired":
            raise Gone("This reset link has expired.", code="reset_link_expired") from exc
        raise BadRequest("This reset link is not valid.", code="reset_link_invalid") from exc
    except (KeyError, ValueError) as exc:
        raise BadRequest("This reset link is not valid.", code="reset_link_invalid") from exc
    if user is None or not user.is_active or claims.get("f") != _fingerprint(user):
        raise Gone("This reset link was already used.", code="reset_link_used")
    # The new password is judged first: a refused one spends nothing (not the link, not a
    # recovery code, not the TOTP step), so the same link works with a better password.
    enforce_policy(password, user.email, runtime.settings)
    if user.has_two_factor and not await two_factor.checked_second_factor(
        db, runtime.kv, runtime.settings, user, code, recovery_code
    ):
        raise Unauthorized(
            "This account has two-factor authentication: send a valid `code` or "
            "`recovery_code` with the new password.",
            code="two_factor_code_required",
        )
    user.password_hash = await runtime.passwords.hash(password)
    await db.flush()
    await runtime.sessions.revoke_all(user.id)
    return user
