from __future__ import annotations

import uuid

from fastapi import APIRouter

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import MembersManage, MembersRead, WorkspaceRead
from botplatform.authz.permissions import Role
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Forbidden
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.member import repository, service
from botplatform.member.schemas import MemberOut, MemberUpdate
from botplatform.models import Membership, User

router = APIRouter(prefix="/workspaces/{ws}", tags=["members"])


def _out(membership: Membership, user: User) -> MemberOut:
    return MemberOut(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=Role(membership.role),
        joined_at=membership.created_at,
    )


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
    return ok(Page(items=[_out(m, u) for m, u in rows], next_cursor=next_cursor))


@router.get("/members/{user_id}")
async def get_member(access: MembersRead, user_id: uuid.UUID, db: DbSession) -> Envelope[MemberOut]:
    membership, user = await repository.get(db, access.workspace_id, user_id)
    return ok(_out(membership, user))


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
    return ok(_out(membership, user), "Role changed")


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
