"""Rules of branding. Flushes, never commits: the edge owns the transaction.

The logo is stored through the media storage (local folder or S3) under the workspace's
prefix, named by its content hash; the row names the current one. A replaced or removed logo
file is deleted by a job after the commit (`branding.delete_logo`), which keeps it if the row
names it again by then, so a rollback or a quick re-upload never loses the current logo.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.audit.service import diff
from botplatform.branding import repository
from botplatform.branding.schemas import HEX_COLOR, BrandingIn, BrandingOut, normalize_host
from botplatform.kit.errors import Conflict, Unprocessable
from botplatform.media.storage import MediaRejected, MediaStorage, check_media
from botplatform.models import Workspace
from botplatform.worker.jobs import enqueue

DELETE_LOGO_JOB = "branding.delete_logo"
MAX_LOGO_BYTES = 512 * 1024
# Raster images only: an SVG can carry script, and the logo is shown on public pages.
LOGO_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}

# Form field → column.
_COLUMNS = {
    "name": "brand_name",
    "primary_color": "brand_primary_color",
    "background_color": "brand_background_color",
    "text_color": "brand_text_color",
    "custom_domain": "custom_domain",
}


def logo_path(workspace: Workspace) -> str | None:
    """The logo's public URL on this platform (relative, so it works on a custom domain too);
    the version changes with the file, so caches never show an old logo."""
    if not workspace.logo_key:
        return None
    version = workspace.logo_key.rsplit("/", 1)[-1].split(".", 1)[0].removeprefix("logo-")[:12]
    return f"/branding/{workspace.id}/logo?v={version}"


def theme_path(workspace: Workspace) -> str:
    colours = f"{workspace.brand_primary_color}{workspace.brand_background_color}"
    version = hashlib.sha256(f"{colours}{workspace.brand_text_color}".encode()).hexdigest()[:12]
    return f"/branding/{workspace.id}/theme.css?v={version}"


@dataclass(frozen=True)
class HostBrand:
    """What the login page on a workspace's own host shows."""

    name: str
    logo_url: str | None
    theme_url: str


async def for_host(db: AsyncSession, host_header: str) -> HostBrand | None:
    """The branding of the workspace that claimed this Host, if any. Anyone can send any
    Host header; that only shows what the workspace shows publicly anyway."""
    host = normalize_host(host_header)
    if not host:
        return None
    workspace = await repository.by_domain(db, host)
    if workspace is None:
        return None
    return HostBrand(
        workspace.brand_name or workspace.name, logo_path(workspace), theme_path(workspace)
    )


def branding_of(workspace: Workspace) -> BrandingOut:
    return BrandingOut(
        name=workspace.brand_name,
        display_name=workspace.brand_name or workspace.name,
        primary_color=workspace.brand_primary_color,
        background_color=workspace.brand_background_color,
        text_color=workspace.brand_text_color,
        logo_url=logo_path(workspace),
        custom_domain=workspace.custom_domain,
    )


def theme_css(workspace: Workspace) -> str:
    """The workspace's colours as CSS custom properties, read by the dashboard's stylesheet.
    Only validated "#rrggbb" values are written (checked again here: this text is CSS)."""
    properties = {
        "--brand-primary": workspace.brand_primary_color,
        "--brand-background": workspace.brand_background_color,
        "--brand-text": workspace.brand_text_color,
    }
    lines = [f"  {name}: {value};" for name, value in properties.items() if _is_hex(value)]
    return ":root {\n" + "\n".join(lines) + "\n}\n"


def _is_hex(value: str | None) -> bool:
    return value is not None and HEX_COLOR.match(value) is not None


def _platform_host(app_url: str) -> str:
    return (urlsplit(app_url).hostname or "").lower()


async def update(
    db: AsyncSession, workspace: Workspace, data: BrandingIn, app_url: str
) -> dict[str, Any]:
    """Replaces name, colours and custom domain; returns the audit diff."""
    domain = data.custom_domain
    if domain is not None and domain == _platform_host(app_url):
        raise Unprocessable(
            "That is the platform's own host name.",
            code="domain_reserved",
            details={"field": "custom_domain"},
        )
    if domain is not None and await repository.domain_taken(db, domain, workspace.id):
        raise Conflict(
            "Another workspace has claimed that host name.",
            code="domain_taken",
            details={"field": "custom_domain"},
        )
    values = data.model_dump()
    before = {field: getattr(workspace, column) for field, column in _COLUMNS.items()}
    for field, column in _COLUMNS.items():
        setattr(workspace, column, values[field])
    await db.flush()
    return diff(before, {field: values[field] for field in _COLUMNS})


def check_logo(data: bytes, declared: str | None) -> str:
    """The logo's mime type, or a 422 naming why it is refused (nothing is stored then)."""
    if len(data) > MAX_LOGO_BYTES:
        raise Unprocessable(
            f"The logo is larger than {MAX_LOGO_BYTES // 1024} KiB.",
            code="logo_rejected",
            details={"reason": "too_large", "max_bytes": MAX_LOGO_BYTES},
        )
    try:
        mime = check_media(data, declared)
    except MediaRejected as exc:
        raise Unprocessable(str(exc), code="logo_rejected", details={"reason": exc.reason}) from exc
    if mime not in LOGO_TYPES:
        raise Unprocessable(
            "The logo must be a PNG, JPEG or WebP image.",
            code="logo_rejected",
            details={"reason": "not_allowed"},
        )
    return mime


def logo_key(workspace_id: uuid.UUID, data: bytes, mime: str) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"ws/{workspace_id}/branding/logo-{digest}.{LOGO_TYPES[mime]}"


async def set_logo(
    db: AsyncSession, storage: MediaStorage, workspace: Workspace, data: bytes, declared: str | None
) -> dict[str, Any]:
    """Checks and stores the file, then points the workspace at it; returns the audit diff."""
    mime = check_logo(data, declared)
    key = logo_key(workspace.id, data, mime)
    await storage.put(key, data, mime)
    return await _point_at(db, workspace, key, mime)


async def remove_logo(db: AsyncSession, workspace: Workspace) -> dict[str, Any]:
    return await _point_at(db, workspace, None, None)


async def _point_at(
    db: AsyncSession, workspace: Workspace, key: str | None, mime: str | None
) -> dict[str, Any]:
    previous = workspace.logo_key
    workspace.logo_key, workspace.logo_mime = key, mime
    await db.flush()
    if previous and previous != key:
        enqueue(db, DELETE_LOGO_JOB, str(workspace.id), previous)
    return diff({"logo": previous}, {"logo": key})
