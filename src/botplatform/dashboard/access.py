"""Who may do what: API keys (the key shown once), members and their roles, invitations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from botplatform.api_key import endpoints as api_key_api
from botplatform.api_key.schemas import ApiKeyCreate
from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission, Role
from botplatform.channel import repository as channel_repository
from botplatform.dashboard.web import Page, PageRoute, attempt, parse_form, ws_page
from botplatform.invitation import endpoints as invitation_api
from botplatform.invitation.schemas import InvitationCreate
from botplatform.kit.errors import AppError
from botplatform.kit.pagination import PageParams
from botplatform.member import endpoints as member_api
from botplatform.member.schemas import MemberChannels, MemberUpdate

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

KeysPage = Annotated[Page, ws_page(Permission.API_KEYS_MANAGE)]
MembersPage = Annotated[Page, ws_page(Permission.MEMBERS_READ)]
MembersManagePage = Annotated[Page, ws_page(Permission.MEMBERS_MANAGE)]
ALL = PageParams(200, None)


async def _keys_context(page: Page) -> dict[str, Any]:
    answer = await api_key_api.list_api_keys(page.granted, page.db, ALL)
    return {"keys": answer.data.items, "grantable": sorted(page.granted.permissions)}


@router.get("/api-keys")
async def api_keys(page: KeysPage) -> Response:
    return page.render("app/api_keys.html", **await _keys_context(page))


def _expiry(value: str) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)  # a date input: midnight UTC of that day
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post("/api-keys")
async def create_api_key(request: Request, page: KeysPage) -> Response:
    form = await page.form()
    try:
        expires_at = _expiry(str(form.get("expires_at") or ""))
    except ValueError:
        expires_at = None
    fields = {
        "name": form.get("name", ""),
        "scopes": form.getlist("scopes"),
        "expires_at": expires_at,
        "allowed_ips": list(str(form.get("allowed_ips") or "").replace(",", " ").split()),
    }
    body, errors = parse_form(ApiKeyCreate, fields)
    context = await _keys_context(page)
    try:
        if body is None:
            return page.render("app/api_keys.html", 422, errors=errors, **context)
        answer = await attempt(
            page.db,
            lambda: api_key_api.create_api_key(
                page.granted, body, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return page.render("app/api_keys.html", exc.status_code, error=exc.message, **context)
    # Shown in this answer only; the page is not cacheable (render sets no-store).
    return page.render("app/api_keys.html", 201, created=answer.data, **await _keys_context(page))


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(request: Request, page: KeysPage, key_id: uuid.UUID) -> Response:
    await page.form()
    await api_key_api.revoke_api_key(page.granted, key_id, page.db, Auditor(request, page.db))
    return page.redirect(page.url("api-keys"), "revoked")


# --- members and invitations ----------------------------------------------------------------


async def _members_context(page: Page) -> dict[str, Any]:
    members = await member_api.list_members(page.granted, page.db, ALL)
    invitations: list[Any] = []
    if page.can(Permission.MEMBERS_MANAGE):
        pending = await invitation_api.list_invitations(page.granted, page.db, ALL, "pending")
        invitations = pending.data.items
    assignable = [role for role in Role if page.granted.role.outranks_or_equals(role)]
    listed = await page.db.execute(channel_repository.list_statement(page.granted))
    return {
        "members": members.data.items,
        "channels": list(listed.scalars()),
        "invitations": invitations,
        "roles": assignable,
        "may_manage": page.can(Permission.MEMBERS_MANAGE),
    }


@router.get("/members")
async def members(page: MembersPage) -> Response:
    return page.render("app/members.html", **await _members_context(page))


@router.post("/members/{user_id}/role")
async def change_role(request: Request, page: MembersManagePage, user_id: uuid.UUID) -> Response:
    form = await page.form()
    body, _errors = parse_form(MemberUpdate, {"role": form.get("role", "")})
    try:
        if body is None:
            raise AppError("Choose a role.", code="validation_error")
        await attempt(
            page.db,
            lambda: member_api.update_member(
                page.granted, user_id, body, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        context = await _members_context(page)
        return page.render("app/members.html", exc.status_code, error=exc.message, **context)
    return page.redirect(page.url("members"), "saved")


@router.post("/members/{user_id}/channels")
async def assign_channels(
    request: Request, page: MembersManagePage, user_id: uuid.UUID
) -> Response:
    """The member's channels (checkboxes); an agent sees only these channels' conversations."""
    form = await page.form()
    body, _errors = parse_form(MemberChannels, {"channel_ids": form.getlist("channel_ids")})
    try:
        if body is None:
            raise AppError("Choose channels from the list.", code="validation_error")
        await attempt(
            page.db,
            lambda: member_api.set_member_channels(
                page.granted, user_id, body, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        context = await _members_context(page)
        return page.render("app/members.html", exc.status_code, error=exc.message, **context)
    return page.redirect(page.url("members"), "saved")


@router.post("/members/{user_id}/remove")
async def remove_member(request: Request, page: MembersManagePage, user_id: uuid.UUID) -> Response:
    await page.form()
    try:
        await attempt(
            page.db,
            lambda: member_api.remove_member(
                page.granted, user_id, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        context = await _members_context(page)
        return page.render("app/members.html", exc.status_code, error=exc.message, **context)
    return page.redirect(page.url("members"), "removed")


@router.post("/invitations")
async def invite(request: Request, page: MembersManagePage) -> Response:
    form = await page.form()
    fields = {"email": form.get("email", ""), "role": form.get("role") or Role.AGENT}
    body, errors = parse_form(InvitationCreate, fields)
    try:
        if body is None:
            context = await _members_context(page)
            return page.render("app/members.html", 422, errors=errors, **context)
        answer = await attempt(
            page.db,
            lambda: invitation_api.create_invitation(
                page.granted, body, page.db, page.runtime, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        context = await _members_context(page)
        return page.render("app/members.html", exc.status_code, error=exc.message, **context)
    context = await _members_context(page)
    return page.render("app/members.html", 201, invitation_link=answer.data.link, **context)


@router.post("/invitations/{invitation_id}/revoke")
async def revoke_invitation(
    request: Request, page: MembersManagePage, invitation_id: uuid.UUID
) -> Response:
    await page.form()
    await invitation_api.revoke_invitation(
        page.granted, invitation_id, page.db, Auditor(request, page.db)
    )
    return page.redirect(page.url("members"), "revoked")
