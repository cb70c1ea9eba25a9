"""Invitations: a row per invitation, and a signed, expiring link naming it. The signature
makes the link unforgeable, the row makes it single-use and revocable."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.dependencies import WorkspaceAccess
from botplatform.authz.permissions import Role
from botplatform.config import Settings
from botplatform.email import templates
from botplatform.email.service import queue_email
from botplatform.invitation import repository
from botplatform.invitation.schemas import InvitationCreate, InvitationStatus
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import BadRequest, Conflict, Forbidden, Gone
from botplatform.kit.scoping import enter_workspace
from botplatform.kit.tokens import InvalidToken, LinkSigner
from botplatform.member import repository as member_repository
from botplatform.member.service import ensure_may_assign
from botplatform.models import Invitation, Membership, User, Workspace
from botplatform.usage import service as usage
from botplatform.workspace import repository as workspace_repository


def _signer(settings: Settings) -> LinkSigner:
    return LinkSigner(settings.signing_key, "invitation")


def status_of(invitation: Invitation) -> InvitationStatus:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= utcnow():
        return "expired"
    return "pending"


def link_for(settings: Settings, invitation: Invitation) -> str:
    token = _signer(settings).sign({"w": str(invitation.workspace_id), "i": str(invitation.id)})
    return f"{settings.app_url.rstrip('/')}/app/invitations/accept?token={token}"


async def create(
    db: AsyncSession, settings: Settings, access: WorkspaceAccess, data: InvitationCreate
) -> tuple[Invitation, str]:
    """Creates the invitation and queues its email; returns it with its link."""
    ensure_may_assign(access, data.role)
    email = data.email.lower()
    if await member_repository.is_member_email(db, access.workspace_id, email):
        raise Conflict("That person is already a member.", code="already_member")
    await usage.ensure_member_room(db, access.workspace_id, inviting=email)
    # Inviting again replaces the earlier link rather than leaving two valid ones.
    for earlier in await repository.pending_for_email(db, access.workspace_id, email):
        earlier.revoked_at = utcnow()
    invitation = Invitation(
        workspace_id=access.workspace_id,
        email=email,
        role=data.role,
        invited_by_id=access.membership.user_id,  # for an API key: its creator
        expires_at=utcnow() + timedelta(seconds=settings.invitation_ttl_seconds),
    )
    db.add(invitation)
    await db.flush()
    link = link_for(settings, invitation)
    inviter = access.principal.user
    inviter_name = (inviter.name or inviter.email) if inviter else access.workspace.name
    subject, text, html = templates.invitation(
        access.workspace.name, inviter_name, str(data.role), link
    )
    await queue_email(
        db,
        kind="invitation",
        to=email,
        subject=subject,
        text=text,
        html=html,
    )
    return invitation, link


async def revoke(db: AsyncSession, invitation: Invitation) -> None:
    if status_of(invitation) != "pending":
        raise Conflict("Only a pending invitation can be revoked.", code="invitation_not_pending")
    invitation.revoked_at = utcnow()
    await db.flush()


async def _invitation_from_token(db: AsyncSession, settings: Settings, token: str) -> Invitation:
    """The invitation a signed token names. The token is our own signature, so the workspace
    it names is trusted enough to enter before reading the row."""
    try:
        payload = _signer(settings).load(token, settings.invitation_ttl_seconds)
        workspace_id, invitation_id = uuid.UUID(payload["w"]), uuid.UUID(payload["i"])
    except InvalidToken as exc:
        if exc.reason == "expired":
            raise Gone("This invitation has expired.", code="invitation_expired") from exc
        raise BadRequest("This invitation link is not valid.", code="invitation_invalid") from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise BadRequest("This invitation link is not valid.", code="invitation_invalid") from exc
    await enter_workspace(db, workspace_id)
    return await repository.get(db, workspace_id, invitation_id)


async def accept(
    db: AsyncSession, settings: Settings, user: User, token: str
) -> tuple[Workspace, Membership]:
    invitation = await _invitation_from_token(db, settings, token)
    status = status_of(invitation)
    if status != "pending":
        raise Gone(f"This invitation is {status}.", code=f"invitation_{status}")
    if invitation.email.lower() != user.email.lower():
        raise Forbidden(
            "This invitation was sent to another email address.",
            code="invitation_email_mismatch",
        )
    workspace = await db.get(Workspace, invitation.workspace_id)
    if workspace is None or workspace.deleted_at is not None:
        raise workspace_repository.workspace_not_found()
    if await member_repository.is_member_email(db, workspace.id, user.email):
        raise Conflict("You are already a member of this workspace.", code="already_member")
    await usage.ensure_member_room(db, workspace.id)
    membership = Membership(workspace_id=workspace.id, user_id=user.id, role=Role(invitation.role))
    db.add(membership)
    invitation.accepted_at = utcnow()
    invitation.accepted_by_id = user.id
    await db.flush()
    return workspace, membership
