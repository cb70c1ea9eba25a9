"""Registration, login (with its second factor) and sessions. Flushes, never commits."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.auth import two_factor
from botplatform.auth.lockout import LoginGuard
from botplatform.auth.passwords import enforce_policy
from botplatform.auth.schemas import LoginOut, RegisterIn, TwoFactorChallenge, UserOut
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Unauthorized
from botplatform.kit.tokens import InvalidToken, LinkSigner, random_token
from botplatform.models import User
from botplatform.runtime import Runtime

MAX_CODE_ATTEMPTS = 5


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        is_superadmin=user.is_superadmin,
        two_factor_enabled=user.has_two_factor,
        created_at=user.created_at,
    )


async def find_by_email(db: AsyncSession, email: str) -> User | None:
    # Emails are stored lower-cased, so the unique index serves this lookup.
    statement = select(User).where(User.email == email.strip().lower())
    return (await db.execute(statement)).scalar_one_or_none()


async def create_user(
    db: AsyncSession,
    runtime: Runtime,
    email: str,
    password: str,
    name: str = "",
    *,
    is_superadmin: bool = False,
) -> User:
    email = email.strip().lower()
    enforce_policy(password, email, runtime.settings)
    if await find_by_email(db, email) is not None:
        raise Conflict("An account with this email already exists.", code="email_taken")
    user = User(
        email=email,
        name=name,
        password_hash=await runtime.passwords.hash(password),
        is_superadmin=is_superadmin,
    )
    db.add(user)
    try:
        await db.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict("An account with this email already exists.", code="email_taken") from exc
    return user


async def set_password(db: AsyncSession, runtime: Runtime, user: User, password: str) -> None:
    """An operator sets an account's password (`botplatform create-admin --password`): the
    registration rules apply, every session of the account ends, and a failed-login lock on
    it is lifted so the new password works at once."""
    enforce_policy(password, user.email, runtime.settings)
    user.password_hash = await runtime.passwords.hash(password)
    await db.flush()
    await runtime.sessions.revoke_all(user.id)
    await LoginGuard(runtime.kv, runtime.settings).succeeded(user.email)


async def register(db: AsyncSession, runtime: Runtime, data: RegisterIn) -> User:
    return await create_user(db, runtime, data.email, data.password, data.name)


def invalid_credentials() -> Unauthorized:
    return Unauthorized("The email or password is incorrect.", code="invalid_credentials")


async def authenticate(
    db: AsyncSession, runtime: Runtime, email: str, password: str, ip: str
) -> User:
    """The user for these credentials. Unknown email, wrong password and disabled account all
    get the same answer after the same work; repeated failures lock the account and the IP."""
    guard = LoginGuard(runtime.kv, runtime.settings)
    await guard.check(email, ip)
    user = await find_by_email(db, email)
    valid = await runtime.passwords.verify(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        await guard.failed(email, ip)
        raise invalid_credentials()
    await guard.succeeded(email)
    if runtime.passwords.needs_rehash(user.password_hash):
        user.password_hash = await runtime.passwords.hash(password)
    return user


async def start_session(db: AsyncSession, runtime: Runtime, user: User) -> LoginOut:
    user.last_login_at = utcnow()
    await db.flush()
    session_id, session = await runtime.sessions.create(user.id)
    token = runtime.session_tokens.encode(session_id, str(user.id), session.expires_at)
    return LoginOut(access_token=token, expires_at=session.expires_at, user=user_out(user))


def _challenges(runtime: Runtime) -> LinkSigner:
    return LinkSigner(runtime.settings.signing_key, "2fa-challenge")


async def start_challenge(runtime: Runtime, user: User) -> TwoFactorChallenge:
    """The password was right; the session waits for the second factor."""
    nonce, ttl = random_token(16), runtime.settings.two_factor_challenge_seconds
    await runtime.kv.put(f"2fa_challenge:{nonce}", str(user.id), ttl)
    token = _challenges(runtime).sign({"u": str(user.id), "n": nonce})
    return TwoFactorChallenge(challenge_token=token, expires_at=utcnow() + timedelta(seconds=ttl))


async def finish_challenge(
    db: AsyncSession,
    runtime: Runtime,
    token: str,
    code: str | None,
    recovery_code: str | None,
) -> User:
    """The user whose challenge this is, once a TOTP or recovery code proves it. A challenge
    works once and survives only a few wrong codes."""
    expired = Unauthorized("Log in again: this challenge has expired.", code="challenge_expired")
    try:
        claims = _challenges(runtime).load(token, runtime.settings.two_factor_challenge_seconds)
        user_id, nonce = uuid.UUID(claims["u"]), str(claims["n"])
    except (InvalidToken, KeyError, ValueError) as exc:
        raise expired from exc
    key = f"2fa_challenge:{nonce}"
    if await runtime.kv.get(key) != str(user_id):
        raise expired
    user = await db.get(User, user_id)
    if user is None or not user.is_active:
        raise expired
    if not await two_factor.checked_second_factor(
        db, runtime.kv, runtime.settings, user, code, recovery_code
    ):
        attempts = await runtime.kv.incr(f"2fa_attempts:{nonce}", 600)
        if attempts >= MAX_CODE_ATTEMPTS:
            await runtime.kv.delete(key)
        raise Unauthorized("That code is not valid.", code="invalid_code")
    await runtime.kv.delete(key)
    return user
