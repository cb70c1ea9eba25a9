from __future__ import annotations

import uuid

from fastapi import APIRouter

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import MembersManage, MembersRead, WorkspaceRead
from botplatform.authz.permissions import CHANNEL_SCOPED_ROLES, Role
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Forbidden
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.member import repository, service
from botplatform.member.schemas import MemberChannels, MemberOut, MemberUpdate
from botplatform.models import Membership, User

router = APIRouter(prefix="/workspaces/{ws}", tags=["members"])


def _out(membership: Membership, user: User, channel_ids: list[uuid.UUID]) -> MemberOut:
    return MemberOut(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=Role(membership.role),
        joined_at=membership.created_at,
        channel_ids=channel_ids,
        channel_scoped=Role(membership.role) in CHANNEL_SCOPED_ROLES,
    )


async def _one(db: DbSession, membership: Membership, user: User) -> MemberOut:
    assigned = await repository.channels_by_user(db, membership.workspace_id, [user.id])
    return _out(membership, user, assigned[user.id])


@router.get("/members")
async def list_members(
    access: MembersRead, db: DbSession, page: PageQuery
) -> Envelope[Page[MemberOut]]:
    rows, next_cursor = await paginate(
        db,
        repository.members_with_users(access.workspace_id),
        Membership.created_at,
        Membership.id,
        page,
    )
    assigned = await repository.channels_by_user(db, access.workspace_id, [u.id for _, u in rows])
    items = [_out(m, u, assigned[u.id]) for m, u in rows]
    return ok(Page(items=items, next_cursor=next_cursor))


@router.get("/members/{user_id}")
async def get_member(access: MembersRead, user_id: uuid.UUID, db: DbSession) -> Envelope[MemberOut]:
    membership, user = await repository.get(db, access.workspace_id, user_id)
    return ok(await _one(db, membership, user))


@router.patch("/members/{user_id}")
async def update_member(
    access: MembersManage, user_id: uuid.UUID, body: MemberUpdate, db: DbSession, audit: Audit
) -> Envelope[MemberOut]:
    """Changes a member's role. You cannot grant a role above your own, and the last owner
    cannot be demoted."""
    membership, user = await repository.get(db, access.workspace_id, user_id)
    before = membership.role
    await service.change_role(db, access, membership, body.role)
    await audit.log(
        "member.update",
        workspace_id=access.workspace_id,
        target_type="user",
        target_id=user.id,
        changes={"role": {"before": before, "after": body.role}},
    )
    return ok(await _one(db, membership, user), "Role changed")


@router.put("/members/{user_id}/channels")
async def set_member_channels(
    access: MembersManage,
    user_id: uuid.UUID,
    body: MemberChannels,
    db: DbSession,
    audit: Audit,
) -> Envelope[MemberOut]:
    """Sets the channels (inboxes) the member is assigned to, replacing the list. An agent
    sees only the conversations of its channels (any other answers 404); other roles see
    every channel, so for them the list only takes effect if they become agents."""
    membership, user = await repository.get(db, access.workspace_id, user_id)
    before, after = await service.set_channels(db, access, membership, body.channel_ids)
    await audit.log(
        "member.channels",
        workspace_id=access.workspace_id,
        target_type="user",
        target_id=user.id,
        changes={
            "channel_ids": {"before": [str(c) for c in before], "after": [str(c) for c in after]}
        },
    )
    return ok(_out(membership, user, after), "Channels assigned")


@router.delete("/members/{user_id}")
async def remove_member(
    access: MembersManage, user_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[None]:
    """Removes a member from the workspace. The last owner cannot be removed."""
    membership, _ = await repository.get(db, access.workspace_id, user_id)
    role = membership.role
    await service.remove(db, access, membership)
    await audit.log(
        "member.remove",
        workspace_id=access.workspace_id,
        target_type="user",
        target_id=user_id,
        changes={"role": {"before": role, "after": None}},
    )
    return ok(None, "Member removed")


@router.post("/leave")
async def leave_workspace(access: WorkspaceRead, db: DbSession, audit: Audit) -> Envelope[None]:
    """Leaves the workspace. The last owner has to hand ownership over first."""
    if access.principal.api_key is not None:
        raise Forbidden(
            "An API key cannot leave a workspace; revoke it.", code="user_session_required"
        )
    await service.leave(db, access)
    await audit.log(
        "member.leave",
        workspace_id=access.workspace_id,
        target_type="user",
        target_id=access.membership.user_id,
    )
    return ok(None, "You left the workspace")
