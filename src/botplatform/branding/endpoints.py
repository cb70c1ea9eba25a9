"""Branding of a workspace: read by any member, changed with `workspace:update`; and the
public side of it (logo, colour stylesheet), which the login page on the workspace's own host
and its widget show to people who are not logged in."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.responses import Response

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import WorkspaceRead, WorkspaceUpdate
from botplatform.branding import repository, service
from botplatform.branding.schemas import BrandingIn, BrandingOut
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import NotFound
from botplatform.media.storage import MediaNotFound
from botplatform.runtime import RuntimeDep

router = APIRouter(prefix="/workspaces/{ws}", tags=["branding"])
public_router = APIRouter(prefix="/branding", tags=["branding"], include_in_schema=False)


@router.get("/branding")
async def get_branding(access: WorkspaceRead) -> Envelope[BrandingOut]:
    """Display name, widget colours, logo and custom domain."""
    return ok(service.branding_of(access.workspace))


@router.put("/branding")
async def set_branding(
    access: WorkspaceUpdate, body: BrandingIn, db: DbSession, runtime: RuntimeDep, audit: Audit
) -> Envelope[BrandingOut]:
    """Replaces name, colours (`#rrggbb`) and custom domain (unique across the platform;
    409 `domain_taken`). The host name's DNS must point at this platform: that is not checked."""
    changes = await service.update(db, access.workspace, body, runtime.settings.app_url)
    await _audit(audit, access.workspace_id, "branding.update", changes)
    return ok(service.branding_of(access.workspace), "Branding saved")


@router.put("/branding/logo")
async def upload_logo(
    access: WorkspaceUpdate,
    file: Annotated[UploadFile, File(description="PNG, JPEG or WebP, at most 512 KiB")],
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[BrandingOut]:
    """Replaces the logo. The bytes must be what they claim (422 `logo_rejected` otherwise,
    and nothing is stored)."""
    data = await file.read(service.MAX_LOGO_BYTES + 1)
    changes = await service.set_logo(db, runtime.media, access.workspace, data, file.content_type)
    await _audit(audit, access.workspace_id, "branding.logo", changes)
    return ok(service.branding_of(access.workspace), "Logo saved")


@router.delete("/branding/logo")
async def delete_logo(
    access: WorkspaceUpdate, db: DbSession, audit: Audit
) -> Envelope[BrandingOut]:
    """Removes the logo (its file goes once this has committed)."""
    changes = await service.remove_logo(db, access.workspace)
    await _audit(audit, access.workspace_id, "branding.logo", changes)
    return ok(service.branding_of(access.workspace), "Logo removed")


async def _audit(audit: Audit, ws: uuid.UUID, action: str, changes: dict[str, object]) -> None:
    await audit.log(action, workspace_id=ws, target_type="workspace", target_id=ws, changes=changes)


def _not_found() -> NotFound:
    return NotFound("No such branding.", code="branding_not_found")


@public_router.get("/{workspace_id}/logo", response_class=Response)
async def public_logo(workspace_id: uuid.UUID, db: DbSession, runtime: RuntimeDep) -> Response:
    """The current logo. Public on purpose: branding is what a workspace shows to visitors."""
    workspace = await repository.live_workspace(db, workspace_id)
    if workspace is None or not workspace.logo_key:
        raise _not_found()
    try:
        data, _stored_type = await runtime.media.get(workspace.logo_key)
    except MediaNotFound as exc:
        raise _not_found() from exc
    # nosniff comes with every answer (SecurityHeadersMiddleware).
    return Response(
        data,
        # The type checked at upload, not whatever the store says.
        media_type=workspace.logo_mime or "application/octet-stream",
        headers={
            "Cache-Control": "public, max-age=300",
            "Content-Disposition": "inline",
        },
    )


@public_router.get("/{workspace_id}/theme.css", response_class=Response)
async def public_theme(workspace_id: uuid.UUID, db: DbSession) -> Response:
    """The workspace's colours as CSS custom properties (the dashboard's stylesheet reads
    them): how branding reaches a page under a CSP that allows no inline style."""
    workspace = await repository.live_workspace(db, workspace_id)
    if workspace is None:
        raise _not_found()
    return Response(
        service.theme_css(workspace),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=300"},
    )
