"""Who is calling: the bearer token → its live session → the user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from botplatform.db import DbSession
from botplatform.kit.errors import Unauthorized
from botplatform.kit.tokens import InvalidToken
from botplatform.models import User
from botplatform.runtime import RuntimeDep

bearer_scheme = HTTPBearer(auto_error=False, description="Session token or API key")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `session_hash` identifies the session it came with."""

    user: User
    session_hash: str


async def current_principal(
    request: Request,
    runtime: RuntimeDep,
    db: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send `Authorization: Bearer <token>`.", code="not_authenticated")
    try:
        claims = runtime.session_tokens.decode(credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized("The token is invalid or expired.", code="invalid_token") from exc
    session = await runtime.sessions.get(claims["sid"])
    if session is None or str(session.user_id) != claims["sub"]:
        raise Unauthorized("The session has ended; log in again.", code="session_expired")
    user = await db.get(User, uuid.UUID(claims["sub"]))
    if user is None or not user.is_active:
        await runtime.sessions.revoke_hash(session.user_id, session.session_hash)
        raise Unauthorized("The session has ended; log in again.", code="session_expired")
    principal = Principal(user=user, session_hash=session.session_hash)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
