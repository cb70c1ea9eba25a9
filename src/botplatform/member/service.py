"""Membership rules: nobody hands out or touches a role above their own, and a workspace
always keeps at least one owner. Also which channels (inboxes) a member is assigned to."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.dependencies import WorkspaceAccess
from botplatform.authz.permissions import Role
from botplatform.channel.repository import channel_not_found
from botplatform.kit.errors import Conflict, Forbidden
from botplatform.member import repository
from botplatform.models import ChannelMember, Membership


def ensure_may_assign(access: WorkspaceAccess, role: Role) -> None:
    if not access.role.outranks_or_equals(role):
        raise Forbidden(
            f"A {access.role} cannot grant the {role} role.",
            code="role_too_high",
            details={"role": str(role)},
        )


def ensure_not_above(access: WorkspaceAccess, role: Role | str, what: str) -> None:
    """The one rule of acting on something that belongs to a role (a member, a key its
    creator made): nobody acts above their own role. `what` names it for the message."""
    if not access.role.outranks_or_equals(Role(role)):
        raise Forbidden(
            f"A {access.role} cannot change {what} whose role is {role}.",
            code="role_too_high",
            details={"role": str(role)},
        )


def _ensure_may_manage(access: WorkspaceAccess, target: Membership) -> None:
    ensure_not_above(access, target.role, "a member")


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
    await _unassign_all(db, target)
    await db.delete(target)
    await db.flush()


async def leave(db: AsyncSession, access: WorkspaceAccess) -> None:
    await _ensure_not_last_owner(db, access.membership)
    await _unassign_all(db, access.membership)
    await db.delete(access.membership)
    await db.flush()


async def _unassign_all(db: AsyncSession, target: Membership) -> None:
    """A member who leaves takes no channel assignment along to a later re-invitation."""
    for assignment in await repository.assignments(db, target.workspace_id, target.user_id):
        await db.delete(assignment)


async def set_channels(
    db: AsyncSession, access: WorkspaceAccess, target: Membership, channel_ids: list[uuid.UUID]
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Replaces the member's assigned channels; every id must be a channel of this workspace
    (404 otherwise, as for any id of another tenant). Answers (before, after), in the order
    the member's answers list them (oldest assignment first)."""
    _ensure_may_manage(access, target)
    ws = target.workspace_id
    wanted = list(dict.fromkeys(channel_ids))
    missing = set(wanted) - await repository.existing_channel_ids(db, ws, wanted)
    if missing:
        error = channel_not_found()
        error.details = {"channel_ids": sorted(str(m) for m in missing)}
        raise error
    current = await repository.assignments(db, ws, target.user_id)
    before = [a.channel_id for a in sorted(current, key=lambda a: (a.created_at, a.channel_id))]
    for assignment in current:
        if assignment.channel_id not in wanted:
            await db.delete(assignment)
    for channel_id in wanted:
        if channel_id not in before:
            db.add(ChannelMember(workspace_id=ws, channel_id=channel_id, user_id=target.user_id))
    await db.flush()
    kept = [channel_id for channel_id in before if channel_id in wanted]
    return before, kept + [channel_id for channel_id in wanted if channel_id not in before]
