from __future__ import annotations

from fastapi import APIRouter, status

from botplatform.auth import service
from botplatform.auth.dependencies import CurrentPrincipal
from botplatform.auth.schemas import (
    LoginIn,
    LoginOut,
    LogoutAllOut,
    MembershipSummary,
    MeOut,
    RegisterIn,
)
from botplatform.authz.permissions import Role
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.runtime import RuntimeDep
from botplatform.workspace import repository as workspace_repository

router = APIRouter(tags=["auth"])


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(body: RegisterIn, db: DbSession, runtime: RuntimeDep) -> Envelope[LoginOut]:
    """Creates an account and logs it in. Passwords: at least 12 characters, not a common
    password, not containing the email address."""
    user = await service.register(db, runtime, body)
    return ok(await service.start_session(runtime, user), "Account created")


@router.post("/auth/login")
async def login(body: LoginIn, db: DbSession, runtime: RuntimeDep) -> Envelope[LoginOut]:
    """Exchanges email and password for a bearer token tied to a server-side session."""
    user = await service.authenticate(db, runtime, body.email, body.password)
    return ok(await service.start_session(runtime, user), "Logged in")


@router.post("/auth/logout")
async def logout(principal: CurrentPrincipal, runtime: RuntimeDep) -> Envelope[None]:
    """Ends this session; its token stops working at once."""
    await runtime.sessions.revoke_hash(principal.user.id, principal.session_hash)
    return ok(None, "Logged out")


@router.post("/auth/logout-all")
async def logout_all(principal: CurrentPrincipal, runtime: RuntimeDep) -> Envelope[LogoutAllOut]:
    """Ends every session of the caller, on every device."""
    ended = await runtime.sessions.revoke_all(principal.user.id)
    return ok(LogoutAllOut(sessions_ended=ended), "Logged out everywhere")


@router.get("/me")
async def me(principal: CurrentPrincipal, db: DbSession) -> Envelope[MeOut]:
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
