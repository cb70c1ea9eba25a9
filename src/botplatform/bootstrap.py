"""First start and demo data: a superadmin and a demo workspace when absent."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.auth.service import create_user, find_by_email
from botplatform.authz.permissions import Role
from botplatform.models import Membership, User, Workspace
from botplatform.runtime import Runtime

DEMO_SLUG = "demo"


@dataclass(frozen=True)
class NewCredentials:
    email: str
    password: str
    role: str


def generate_password() -> str:
    return secrets.token_urlsafe(18)


async def ensure_superadmin(
    db: AsyncSession, runtime: Runtime
) -> tuple[User, NewCredentials | None]:
    """The first superadmin, created from ADMIN_EMAIL/ADMIN_PASSWORD (or a generated password)
    when there is none; the credentials come back only when just created."""
    existing = (
        await db.execute(select(User).where(User.is_superadmin).limit(1))
    ).scalar_one_or_none()
    if existing is not None:
        return existing, None
    settings = runtime.settings
    password = settings.admin_password or generate_password()
    user = await find_by_email(db, settings.admin_email)
    if user is not None:
        user.is_superadmin = True
        await db.flush()
        return user, None
    user = await create_user(
        db, runtime, settings.admin_email, password, "Administrator", is_superadmin=True
    )
    return user, NewCredentials(user.email, password, "superadmin")


async def ensure_demo_workspace(db: AsyncSession, owner: User) -> Workspace | None:
    """A demo workspace owned by `owner` when the platform has no workspace at all."""
    if (await db.execute(select(Workspace.id).limit(1))).first() is not None:
        return None
    workspace = Workspace(name="Demo Workspace", slug=DEMO_SLUG)
    db.add(workspace)
    await db.flush()
    db.add(Membership(workspace_id=workspace.id, user_id=owner.id, role=Role.OWNER))
    await db.flush()
    return workspace


async def first_start(runtime: Runtime) -> list[NewCredentials]:
    async with runtime.db.unit_of_work(system=True) as db:
        admin, credentials = await ensure_superadmin(db, runtime)
        await ensure_demo_workspace(db, admin)
    return [credentials] if credentials else []


async def seed_demo_members(runtime: Runtime) -> list[NewCredentials]:
    """One demo user per workspace role below owner in the demo workspace, so each role can
    be tried; only users that did not exist yet are returned (with their passwords)."""
    created: list[NewCredentials] = []
    async with runtime.db.unit_of_work(system=True) as db:
        admin, credentials = await ensure_superadmin(db, runtime)
        if credentials:
            created.append(credentials)
        await ensure_demo_workspace(db, admin)
        demo = (
            await db.execute(select(Workspace).where(Workspace.slug == DEMO_SLUG))
        ).scalar_one_or_none()
        if demo is None:
            return created
        for role in list(Role)[1:]:
            email = f"{role.value}@demo.example.com"
            if await find_by_email(db, email) is not None:
                continue
            password = generate_password()
            user = await create_user(db, runtime, email, password, f"Demo {role.value}")
            db.add(Membership(workspace_id=demo.id, user_id=user.id, role=role))
            created.append(NewCredentials(email, password, role.value))
        await db.flush()
    return created
