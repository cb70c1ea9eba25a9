"""Workspaces (list, create, switch), settings and the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from botplatform.audit import endpoints as audit_api
from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission, Role
from botplatform.dashboard.web import Page, PageRoute, UserPage, attempt, parse_form, ws_page
from botplatform.kit.errors import AppError
from botplatform.kit.pagination import PageParams
from botplatform.workspace import endpoints as workspace_api
from botplatform.workspace.schemas import WorkspaceCreate
from botplatform.workspace.schemas import WorkspaceUpdate as WorkspaceUpdateBody

router = APIRouter(prefix="/app", route_class=PageRoute, include_in_schema=False)
Text = Annotated[str, Query(max_length=100)]


@router.get("")
async def home(page: UserPage) -> Response:
    """Straight into the first workspace; the list when there is none."""
    if len(page.memberships) >= 1 and not page.request.query_params.get("all"):
        return page.redirect(f"/app/w/{page.memberships[0][0].id}")
    return page.render("app/home.html")


@router.get("/workspaces")
async def workspaces(page: UserPage) -> Response:
    return page.render("app/home.html")


@router.post("/workspaces")
async def create_workspace(request: Request, page: UserPage) -> Response:
    form = await page.form()
    body, errors = parse_form(WorkspaceCreate, {"name": form.get("name", "")})
    if body is None:
        return page.render("app/home.html", 422, errors=errors)
    answer = await workspace_api.create_workspace(
        body, page.principal, page.db, Auditor(request, page.db)
    )
    return page.redirect(f"/app/w/{answer.data.id}")


@router.get("/switch")
async def switch(page: UserPage, ws: Text = "") -> Response:
    """The workspace switcher's target (a plain GET form: works without JavaScript)."""
    try:
        target = uuid.UUID(ws)
    except ValueError:
        return page.redirect("/app/workspaces")
    return page.redirect(f"/app/w/{target}")


SettingsPage = Annotated[Page, ws_page(Permission.WORKSPACE_READ)]
UpdatePage = Annotated[Page, ws_page(Permission.WORKSPACE_UPDATE)]


@router.get("/w/{ws}/settings")
async def settings(page: SettingsPage) -> Response:
    return page.render(
        "app/settings.html",
        may_update=page.can(Permission.WORKSPACE_UPDATE),
        is_owner=page.granted.role == Role.OWNER,
    )


@router.post("/w/{ws}/settings")
async def save_settings(request: Request, page: UpdatePage) -> Response:
    form = await page.form()
    fields: dict[str, Any] = {"name": form.get("name") or None, "slug": form.get("slug") or None}
    if page.granted.role == Role.OWNER:  # only owners may change it; the API refuses others
        fields["require_2fa"] = form.get("require_2fa") == "on"
    body, errors = parse_form(WorkspaceUpdateBody, fields)
    context = {"may_update": True, "is_owner": page.granted.role == Role.OWNER}
    try:
        if body is None:
            return page.render("app/settings.html", 422, errors=errors, **context)
        await attempt(
            page.db,
            lambda: workspace_api.update_workspace(
                body, page.granted, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return page.render("app/settings.html", exc.status_code, error=exc.message, **context)
    return page.redirect(page.url("settings"), "saved")


AuditPage = Annotated[Page, ws_page(Permission.AUDIT_READ)]


def _moment(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/w/{ws}/audit")
async def audit_log(
    page: AuditPage,
    action: Text = "",
    actor_id: Text = "",
    target_type: Text = "",
    target_id: Text = "",
    since: Text = "",
    until: Text = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The API's audit listing, with its filters, newest first."""
    answer = await audit_api.list_audit_logs(
        page.granted,
        page.db,
        PageParams(50, cursor or None),
        action=action or None,
        actor_id=actor_id or None,
        target_type=target_type or None,
        target_id=target_id or None,
        since=_moment(since),
        until=_moment(until),
    )
    filters = {
        "action": action,
        "actor_id": actor_id,
        "target_type": target_type,
        "target_id": target_id,
        "since": since,
        "until": until,
    }
    query = urlencode({k: v for k, v in filters.items() if v})
    return page.render(
        "app/audit.html",
        entries=answer.data.items,
        next_cursor=answer.data.next_cursor,
        filters=filters,
        filter_query=query,
    )
