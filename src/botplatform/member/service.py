"""Membership rules: nobody hands out or touches a role above their own, and a workspace
always keeps at least one owner."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.dependencies import WorkspaceAccess
from botplatform.authz.permissions import Role
from botplatform.kit.errors import Conflict, Forbidden
from botplatform.member import repository
from botplatform.models import Membership


def ensure_may_assign(access: WorkspaceAccess, role: Role) -> None:
    if not access.role.outranks_or_equals(role):
        raise Forbidden(
            f"A {access.role} cannot grant the {role} role.",
            code="role_too_high",
            details={"role": str(role)},
        )


def _ensure_may_manage(access: WorkspaceAccess, target: Membership) -> None:
    if not access.role.outranks_or_equals(Role(target.role)):
        raise Forbidden(
            f"A {access.role} cannot change a member whose role is {target.role}.",
            code="role_too_high",
        )


async def _ensure_not_last_owner(db: AsyncSession, target: Membership) -> None:
    if target.role == Role.OWNER and await repository.count_owners(db, target.workspace_id) <= 1:
        raise Conflict(
            "The last owner cannot be removed or demoted; make someone else owner first.",
            code="last_owner",
        )


async def change_role(
    db: AsyncSession, access: WorkspaceAccess, target: Membership, role: Role
) -> Membership:
    _ensure_may_manage(access, target)
    ensure_may_assign(access, role)
    if role != Role.OWNER:
        await _ensure_not_last_owner(db, target)
    target.role = role
    await db.flush()
    return target


async def remove(db: AsyncSession, access: WorkspaceAccess, target: Membership) -> None:
    _ensure_may_manage(access, target)
    await _ensure_not_last_owner(db, target)
    await db.delete(target)
    await db.flush()


async def leave(db: AsyncSession, access: WorkspaceAccess) -> None:
    await _ensure_not_last_owner(db, access.membership)
    await db.delete(access.membership)
    await db.flush()
