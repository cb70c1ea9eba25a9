"""Registration and login. Flushes, never commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.auth.passwords import enforce_policy
from botplatform.auth.schemas import LoginOut, RegisterIn, UserOut
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Unauthorized
from botplatform.models import User
from botplatform.runtime import Runtime


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        is_superadmin=user.is_superadmin,
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


async def register(db: AsyncSession, runtime: Runtime, data: RegisterIn) -> User:
    return await create_user(db, runtime, data.email, data.password, data.name)


async def authenticate(db: AsyncSession, runtime: Runtime, email: str, password: str) -> User:
    """The user for these credentials. Unknown email, wrong password and disabled account all
    get the same answer after the same amount of work."""
    user = await find_by_email(db, email)
    valid = await runtime.passwords.verify(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        raise Unauthorized("The email or password is incorrect.", code="invalid_credentials")
    if runtime.passwords.needs_rehash(user.password_hash):
        user.password_hash = await runtime.passwords.hash(password)
    user.last_login_at = utcnow()
    await db.flush()
    return user


async def start_session(runtime: Runtime, user: User) -> LoginOut:
    session_id, session = await runtime.sessions.create(user.id)
    token = runtime.session_tokens.encode(session_id, str(user.id), session.expires_at)
    return LoginOut(access_token=token, expires_at=session.expires_at, user=user_out(user))
