"""Every dashboard page router, and the static files (ours and the installed htmx)."""

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from botplatform.dashboard import access, admin, auth_pages, contacts_channels, inbox, workspace
from botplatform.dashboard import automations as automation_pages
from botplatform.dashboard import broadcasts as broadcast_pages
from botplatform.dashboard import message_templates as template_pages
from botplatform.dashboard import segments as segment_pages
from botplatform.dashboard import teams_hours as team_pages
from botplatform.dashboard import webhooks as webhook_pages
from botplatform.dashboard.ai import router as ai_router
from botplatform.dashboard.analytics import router as analytics_router
from botplatform.dashboard.assets import STATIC_DIR, FingerprintedStaticFiles
from botplatform.dashboard.bots import router as bots_router
from botplatform.dashboard.usage import router as usage_router

dashboard_router = APIRouter(include_in_schema=False)


@dashboard_router.get("/")
async def root() -> RedirectResponse:
    """The bare address opens the dashboard (which sends a visitor to the login page)."""
    return RedirectResponse("/app", status_code=307)


@dashboard_router.get("/favicon.ico")
async def favicon() -> FileResponse:
    # Browsers ask for it on every site, pages or not (the API docs, a JSON answer).
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


dashboard_router.include_router(auth_pages.router)
dashboard_router.include_router(workspace.router)
dashboard_router.include_router(inbox.router)
dashboard_router.include_router(segment_pages.router)
dashboard_router.include_router(contacts_channels.router)
dashboard_router.include_router(access.router)
dashboard_router.include_router(admin.router)
dashboard_router.include_router(webhook_pages.router)
dashboard_router.include_router(automation_pages.router)
dashboard_router.include_router(team_pages.router)
dashboard_router.include_router(bots_router)
dashboard_router.include_router(ai_router)
dashboard_router.include_router(usage_router)
dashboard_router.include_router(analytics_router)
dashboard_router.include_router(template_pages.router)
dashboard_router.include_router(broadcast_pages.router)

static_files = FingerprintedStaticFiles(directory=STATIC_DIR, check_dir=False)
