"""TOTP (RFC 6238) two-factor authentication with QR provisioning and one-time recovery
codes. A TOTP code is accepted once (no replay within its window)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import pyotp
import segno
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.auth.lockout import TwoFactorGuard
from botplatform.config import Settings
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Unprocessable
from botplatform.kit.kv import KeyValueStore
from botplatform.models import RecoveryCode, User

ISSUER = "WhatsApp Bot Platform"
RECOVERY_CODES = 10


@dataclass(frozen=True)
class Provisioning:
    secret: str
    otpauth_uri: str
    qr_svg: str


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace("-", "").encode()).hexdigest()


def start_setup(user: User) -> Provisioning:
    if user.has_two_factor:
        raise Conflict("Two-factor authentication is already on.", code="two_factor_enabled")
    secret = pyotp.random_base32()
    user.totp_pending_secret = secret
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    svg = segno.make(uri, error="m").svg_inline(scale=4)
    return Provisioning(secret, uri, svg)


async def totp_matches(kv: KeyValueStore, user_id: str, secret: str, code: str) -> bool:
    """True for a current code (±1 step of clock drift) not used before."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return False
    totp, now = pyotp.TOTP(secret), time.time()
    for drift in (0, -1, 1):
        step = totp.timecode(now) + drift
        if secrets.compare_digest(totp.generate_otp(step), code):
            # Claim the step: the same code cannot log in twice.
            return await kv.put_if_absent(f"totp_used:{user_id}:{step}", "1", 120)
    return False


async def enable(db: AsyncSession, kv: KeyValueStore, user: User, code: str) -> list[str]:
    if user.has_two_factor:
        raise Conflict("Two-factor authentication is already on.", code="two_factor_enabled")
    if not user.totp_pending_secret:
        raise Conflict("Start with /auth/2fa/setup.", code="two_factor_not_set_up")
    if not await totp_matches(kv, str(user.id), user.totp_pending_secret, code):
        raise Unprocessable("That code is not valid.", code="invalid_code")
    user.totp_secret, user.totp_pending_secret = user.totp_pending_secret, None
    user.totp_enabled_at = utcnow()
    return await new_recovery_codes(db, user)


async def new_recovery_codes(db: AsyncSession, user: User) -> list[str]:
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    db.add_all(RecoveryCode(user_id=user.id, code_hash=_hash(code)) for code in codes)
    await db.flush()
    return codes


async def use_recovery_code(db: AsyncSession, user: User, code: str) -> bool:
    statement = select(RecoveryCode).where(
        RecoveryCode.user_id == user.id,
        RecoveryCode.code_hash == _hash(code),
        RecoveryCode.used_at.is_(None),
    )
    found = (await db.execute(statement.with_for_update())).scalar_one_or_none()
    if found is None:
        return False
    found.used_at = utcnow()
    await db.flush()
    return True


async def second_factor_ok(
    db: AsyncSession, kv: KeyValueStore, user: User, code: str | None, recovery_code: str | None
) -> bool:
    if not user.totp_secret:
        return False
    if code:
        return await totp_matches(kv, str(user.id), user.totp_secret, code)
    if recovery_code:
        return await use_recovery_code(db, user, recovery_code)
    return False


async def checked_second_factor(
    db: AsyncSession,
    kv: KeyValueStore,
    settings: Settings,
    user: User,
    code: str | None,
    recovery_code: str | None,
) -> bool:
    """`second_factor_ok` behind the account's wrong-code limit: 429 `two_factor_locked`
    while locked; each wrong code counts towards the lock, a right one clears the count."""
    guard = TwoFactorGuard(kv, settings)
    await guard.check(str(user.id))
    if await second_factor_ok(db, kv, user, code, recovery_code):
        await guard.succeeded(str(user.id))
        return True
    await guard.failed(str(user.id))
    return False


async def disable(db: AsyncSession, user: User) -> None:
    user.totp_secret = user.totp_pending_secret = None
    user.totp_enabled_at = None
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    await db.flush()
