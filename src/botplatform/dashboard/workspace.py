"""Workspaces (list, create, switch), settings (with branding and retention) and the audit
log."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response, UploadFile
from starlette.datastructures import UploadFile as StarletteUploadFile

from botplatform.audit import endpoints as audit_api
from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission, Role
from botplatform.branding import endpoints as branding_api
from botplatform.branding import service as branding_service
from botplatform.branding.schemas import BrandingIn
from botplatform.dashboard.web import Page, PageRoute, UserPage, attempt, parse_form, ws_page
from botplatform.kit.errors import AppError
from botplatform.kit.pagination import PageParams
from botplatform.retention import endpoints as retention_api
from botplatform.retention import service as retention_service
from botplatform.retention.schemas import RetentionIn
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
    if ws == "new":
        return page.redirect("/app/workspaces#new-ws")
    try:
        target = uuid.UUID(ws)
    except ValueError:
        return page.redirect("/app/workspaces")
    return page.redirect(f"/app/w/{target}")


SettingsPage = Annotated[Page, ws_page(Permission.WORKSPACE_READ)]
UpdatePage = Annotated[Page, ws_page(Permission.WORKSPACE_UPDATE)]


@router.get("/w/{ws}/settings")
async def settings(page: SettingsPage) -> Response:
    return await _settings(page)


async def _settings(page: Page, status_code: int = 200, **extra: Any) -> Response:
    """The settings page: name, slug, 2FA, branding, custom domain and retention; the forms
    for those who may change them (`workspace:update`), the values for everyone else."""
    access = page.granted
    context = {
        "may_update": page.can(Permission.WORKSPACE_UPDATE),
        "is_owner": access.role == Role.OWNER,
        "branding": branding_service.branding_of(access.workspace),
        "retention": await retention_service.policy_of(page.db, access.workspace),
        "default_colors": DEFAULT_COLORS,
        "max_logo_kib": branding_service.MAX_LOGO_BYTES // 1024,
        **extra,
    }
    return page.render("app/settings.html", status_code, **context)


@router.post("/w/{ws}/settings")
async def save_settings(request: Request, page: UpdatePage) -> Response:
    form = await page.form()
    fields: dict[str, Any] = {"name": form.get("name") or None, "slug": form.get("slug") or None}
    if page.granted.role == Role.OWNER:  # only owners may change it; the API refuses others
        fields["require_2fa"] = form.get("require_2fa") == "on"
    body, errors = parse_form(WorkspaceUpdateBody, fields)
    if body is None:
        return await _settings(page, 422, errors=errors)
    return await _apply(
        page,
        lambda: workspace_api.update_workspace(
            body, page.granted, page.db, Auditor(request, page.db)
        ),
    )


async def _apply(page: Page, call: Callable[[], Awaitable[object]]) -> Response:
    """Runs one API action; its refusal is shown on the page, its success redirects."""
    try:
        await attempt(page.db, call)
    except AppError as exc:
        return await _settings(page, exc.status_code, error=exc.message)
    return page.redirect(page.url("settings"), "saved")


# The platform's own colours (app.css), shown by the colour pickers when none is set.
DEFAULT_COLORS = {"primary": "#0b6e4f", "background": "#f6f7f9", "text": "#1b1f24"}
# Branding form control → API field (the page's own "name" is the workspace's name).
_BRAND_FIELDS = {
    "brand_name": "name",
    "primary_color": "primary_color",
    "background_color": "background_color",
    "text_color": "text_color",
    "custom_domain": "custom_domain",
}


@router.post("/w/{ws}/settings/branding")
async def save_branding(request: Request, page: UpdatePage) -> Response:
    form = await page.form()
    fields = {
        api: str(form.get(control) or "").strip() or None for control, api in _BRAND_FIELDS.items()
    }
    if form.get("default_colors") == "on":  # a colour picker always sends a colour
        fields.update(primary_color=None, background_color=None, text_color=None)
    body, errors = parse_form(BrandingIn, fields)
    if body is None:
        controls = {api: control for control, api in _BRAND_FIELDS.items()}
        shown = {controls.get(name, name): message for name, message in errors.items()}
        return await _settings(page, 422, errors=shown, error="Check the branding fields.")
    return await _apply(
        page,
        lambda: branding_api.set_branding(
            page.granted, body, page.db, page.runtime, Auditor(request, page.db)
        ),
    )


@router.post("/w/{ws}/settings/logo")
async def upload_logo(request: Request, page: UpdatePage) -> Response:
    form = await page.form()
    upload = form.get("logo")
    if not isinstance(upload, StarletteUploadFile) or not upload.filename:
        return await _settings(page, 422, error="Choose an image file to upload.")
    return await _apply(
        page,
        lambda: branding_api.upload_logo(
            page.granted,
            cast(UploadFile, upload),
            page.db,
            page.runtime,
            Auditor(request, page.db),
        ),
    )


@router.post("/w/{ws}/settings/logo/delete")
async def delete_logo(request: Request, page: UpdatePage) -> Response:
    await page.form()
    return await _apply(
        page,
        lambda: branding_api.delete_logo(page.granted, page.db, Auditor(request, page.db)),
    )


@router.post("/w/{ws}/settings/retention")
async def save_retention(request: Request, page: UpdatePage) -> Response:
    form = await page.form()
    fields = {
        "retention_days": str(form.get("retention_days") or "").strip() or None,
        "archive_before_delete": form.get("archive_before_delete") == "on",
    }
    body, errors = parse_form(RetentionIn, fields)
    if body is None:
        return await _settings(page, 422, errors=errors, error="Check the retention fields.")
    return await _apply(
        page,
        lambda: retention_api.set_retention(page.granted, body, page.db, Auditor(request, page.db)),
    )


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
