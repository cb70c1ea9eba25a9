"""Who is calling: a user's session (bearer JWT) or a workspace API key (bearer bp_live_…)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.api_key import keys
from botplatform.db import READ_METHODS, DbSession
from botplatform.kit.client_ip import ip_allowed
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Forbidden, Unauthorized
from botplatform.kit.logging import get_logger
from botplatform.kit.middleware import request_ip
from botplatform.kit.scoping import allow_api_key_lookup, enter_user
from botplatform.kit.tokens import InvalidToken
from botplatform.models import ApiKey, User
from botplatform.runtime import Runtime, RuntimeDep

log = get_logger("botplatform.auth")
bearer_scheme = HTTPBearer(auto_error=False, description="Session token or API key")
LAST_USED_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user with a session, or an API key of one workspace."""

    user: User | None
    session_hash: str | None
    api_key: ApiKey | None
    ip: str

    @property
    def actor_type(self) -> str:
        return "api_key" if self.api_key is not None else "user"

    @property
    def actor_id(self) -> str:
        subject = self.api_key if self.api_key is not None else self.user
        return str(subject.id) if subject is not None else ""

    @property
    def actor_label(self) -> str:
        if self.api_key is not None:
            return f"{keys.PREFIX}{self.api_key.lookup}… ({self.api_key.name})"
        return self.user.email if self.user is not None else ""


@dataclass(frozen=True)
class UserPrincipal(Principal):
    user: User
    session_hash: str


async def _from_session(runtime: Runtime, db: AsyncSession, token: str, ip: str) -> Principal:
    try:
        claims = runtime.session_tokens.decode(token)
    except InvalidToken as exc:
        raise Unauthorized("The token is invalid or expired.", code="invalid_token") from exc
    session = await runtime.sessions.get(claims["sid"])
    if session is None or str(session.user_id) != claims["sub"]:
        raise Unauthorized("The session has ended; log in again.", code="session_expired")
    user = await db.get(User, uuid.UUID(claims["sub"]))
    if user is None or not user.is_active:
        await runtime.sessions.revoke_hash(session.user_id, session.session_hash)
        raise Unauthorized("The session has ended; log in again.", code="session_expired")
    await enter_user(db, user.id)
    return UserPrincipal(user=user, session_hash=session.session_hash, api_key=None, ip=ip)


async def _from_api_key(
    runtime: Runtime, db: AsyncSession, token: str, ip: str, writing: bool
) -> Principal:
    invalid = Unauthorized("The API key is invalid, expired or revoked.", code="invalid_api_key")
    lookup = keys.parse_lookup(token)
    if lookup is None:
        raise invalid
    await allow_api_key_lookup(db, lookup)
    api_key = (await db.execute(select(ApiKey).where(ApiKey.lookup == lookup))).scalar_one_or_none()
    now = utcnow()
    if (
        api_key is None
        or not keys.matches(token, api_key.key_hash)
        or api_key.revoked_at is not None
        or (api_key.expires_at is not None and api_key.expires_at <= now)
    ):
        raise invalid
    if not ip_allowed(ip, api_key.allowed_ips):
        raise Forbidden("This API key may not be used from your address.", code="ip_not_allowed")
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_EVERY:
        await _record_use(runtime, db if writing else None, api_key, ip)  # once a minute
    return Principal(user=None, session_hash=None, api_key=api_key, ip=ip)


async def _record_use(
    runtime: Runtime, request_db: AsyncSession | None, api_key: ApiKey, ip: str
) -> None:
    """`last_used_at`: inside a writing request's own transaction; for a read, in a short
    transaction of its own — bookkeeping must never turn a read into a write (on SQLite a
    read transaction cannot become one safely), nor fail the request."""
    if request_db is not None:
        api_key.last_used_at, api_key.last_used_ip = utcnow(), ip
        return
    try:
        async with runtime.db.unit_of_work() as db:
            await allow_api_key_lookup(db, api_key.lookup)
            await db.execute(
                update(ApiKey)
                .where(ApiKey.id == api_key.id)
                .values(last_used_at=utcnow(), last_used_ip=ip)
            )
    except SQLAlchemyError:
        log.warning("api_key_use_not_recorded", api_key_id=str(api_key.id))


async def authenticate(
    runtime: Runtime, db: AsyncSession, token: str, ip: str, *, writing: bool = False
) -> Principal:
    """The caller behind a bearer token (session token or API key), outside a request: the
    live-events WebSocket uses it."""
    if keys.looks_like_key(token):
        return await _from_api_key(runtime, db, token, ip, writing)
    return await _from_session(runtime, db, token, ip)


async def principal_from_session_token(
    runtime: Runtime, db: AsyncSession, token: str, ip: str
) -> UserPrincipal:
    """The user behind a session token the caller holds some other way (the dashboard's
    cookie); 401 when the session is gone."""
    principal = await _from_session(runtime, db, token, ip)
    assert isinstance(principal, UserPrincipal)
    return principal


async def current_principal(
    request: Request,
    runtime: RuntimeDep,
    db: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send `Authorization: Bearer <token>`.", code="not_authenticated")
    token, ip = credentials.credentials, request_ip(request.scope)
    if keys.looks_like_key(token):
        writing = request.method not in READ_METHODS
        principal = await _from_api_key(runtime, db, token, ip, writing)
    else:
        principal = await _from_session(runtime, db, token, ip)
    request.state.principal = principal
    return principal


async def current_user(
    principal: Annotated[Principal, Depends(current_principal)],
) -> UserPrincipal:
    if not isinstance(principal, UserPrincipal):
        raise Forbidden(
            "This endpoint acts for a person: log in; API keys cannot use it.",
            code="user_session_required",
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentUser = Annotated[UserPrincipal, Depends(current_user)]
