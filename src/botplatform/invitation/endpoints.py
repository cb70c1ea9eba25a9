from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from botplatform.audit.dependencies import Audit
from botplatform.auth.dependencies import CurrentUser
from botplatform.authz.dependencies import MembersManage
from botplatform.authz.permissions import Role
from botplatform.db import DbSession
from botplatform.invitation import repository, service
from botplatform.invitation.schemas import (
    AcceptedInvitation,
    InvitationAccept,
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
    InvitationStatus,
)
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import Invitation
from botplatform.runtime import RuntimeDep

router = APIRouter(tags=["invitations"])


def _out(invitation: Invitation) -> InvitationOut:
    return InvitationOut(
        id=invitation.id,
        email=invitation.email,
        role=Role(invitation.role),
        status=service.status_of(invitation),
        expires_at=invitation.expires_at,
        created_at=invitation.created_at,
        invited_by_id=invitation.invited_by_id,
    )


@router.get("/workspaces/{ws}/invitations")
async def list_invitations(
    access: MembersManage,
    db: DbSession,
    page: PageQuery,
    status_filter: Annotated[InvitationStatus | None, Query(alias="status")] = None,
) -> Envelope[Page[InvitationOut]]:
    statement = repository.list_statement(access.workspace_id, status_filter)
    rows, next_cursor = await paginate(db, statement, Invitation.created_at, Invitation.id, page)
    return ok(Page(items=[_out(row[0]) for row in rows], next_cursor=next_cursor))


@router.post("/workspaces/{ws}/invitations", status_code=status.HTTP_201_CREATED)
async def create_invitation(
    access: MembersManage,
    body: InvitationCreate,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[InvitationCreated]:
    """Invites someone: the link is emailed to them, and returned here too. It works once,
    for INVITATION_TTL_SECONDS; inviting the same address again replaces the earlier link."""
    invitation, link = await service.create(db, runtime.settings, access, body)
    await audit.log(
        "invitation.create",
        workspace_id=access.workspace_id,
        target_type="invitation",
        target_id=invitation.id,
        changes={"email": invitation.email, "role": invitation.role},
    )
    return ok(InvitationCreated(invitation=_out(invitation), link=link), "Invitation created")


@router.delete("/workspaces/{ws}/invitations/{invitation_id}")
async def revoke_invitation(
    access: MembersManage, invitation_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[InvitationOut]:
    invitation = await repository.get(db, access.workspace_id, invitation_id)
    await service.revoke(db, invitation)
    await audit.log(
        "invitation.revoke",
        workspace_id=access.workspace_id,
        target_type="invitation",
        target_id=invitation.id,
    )
    return ok(_out(invitation), "Invitation revoked")


@router.post("/invitations/accept")
async def accept_invitation(
    body: InvitationAccept,
    principal: CurrentUser,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[AcceptedInvitation]:
    """Joins the workspace named by the invitation link. The caller must be logged in with
    the email address the invitation was sent to."""
    workspace, membership = await service.accept(db, runtime.settings, principal.user, body.token)
    await audit.log(
        "invitation.accept",
        workspace_id=workspace.id,
        target_type="user",
        target_id=principal.user.id,
        changes={"role": membership.role},
    )
    accepted = AcceptedInvitation(
        workspace_id=workspace.id, workspace_name=workspace.name, role=Role(membership.role)
    )
    return ok(accepted, "Invitation accepted")
