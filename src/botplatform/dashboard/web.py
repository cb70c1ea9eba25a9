"""What every dashboard page shares: templates, who is looking (from the session cookie),
what they may see (the same `access_for` the API's `require` uses), the navigation, and
HTML answers for errors (a page never shows the API's JSON envelope)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from botplatform.auth.dependencies import UserPrincipal, principal_from_session_token
from botplatform.authz.dependencies import WorkspaceAccess, access_for
from botplatform.authz.permissions import Permission
from botplatform.dashboard import security
from botplatform.dashboard.assets import STATIC_DIR, static_version
from botplatform.db import DbSession
from botplatform.kit.errors import AppError, NotFound, Unauthorized
from botplatform.kit.handlers import plain_message
from botplatform.kit.middleware import request_ip
from botplatform.models import Membership, Workspace
from botplatform.runtime import Runtime
from botplatform.workspace import repository as workspace_repository

templates = Jinja2Templates(directory=str(STATIC_DIR.parent / "templates"))
M = TypeVar("M", bound=BaseModel)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


templates.env.globals["static_version"] = static_version
templates.env.filters["when"] = _when


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str  # under /app/w/{ws}
    permission: Permission


# The workspace menu. Features built elsewhere (bots, automations, outgoing webhooks, AI,
# analytics, usage) add their entry here when their pages exist; until then they have none.
NAV: list[NavItem] = [
    NavItem("Inbox", "inbox", Permission.CONVERSATIONS_READ),
    NavItem("Contacts", "contacts", Permission.CONTACTS_READ),
    NavItem("Segments", "segments", Permission.CONTACTS_READ),
    NavItem("Channels", "channels", Permission.CHANNELS_READ),
    NavItem("Templates", "templates", Permission.TEMPLATES_READ),
    NavItem("Broadcasts", "broadcasts", Permission.BROADCASTS_READ),
    NavItem("API keys", "api-keys", Permission.API_KEYS_MANAGE),
    NavItem("Members", "members", Permission.MEMBERS_READ),
    NavItem("Audit log", "audit", Permission.AUDIT_READ),
    NavItem("Settings", "settings", Permission.WORKSPACE_READ),
    NavItem("Analytics", "analytics", Permission.ANALYTICS_READ),
    NavItem("Usage", "usage", Permission.BILLING_READ),
    NavItem("Webhooks", "webhooks", Permission.WEBHOOKS_READ),
    NavItem("Automations", "automations", Permission.CONVERSATIONS_READ),
    NavItem("Teams", "teams", Permission.MEMBERS_READ),
    NavItem("Business hours", "business-hours", Permission.WORKSPACE_READ),
    NavItem("Bots", "bots", Permission.BOTS_READ),
    NavItem("AI", "ai", Permission.BOTS_READ),
]

NOTICES = {
    "reset_sent": "If an account exists for that email, a reset link is on its way.",
    "password_changed": "Password changed; log in with the new one.",
    "logged_out": "You are logged out.",
    "saved": "Saved.",
    "channel_created": "Channel connected.",
    "invited": "Invitation sent.",
    "revoked": "Revoked.",
    "removed": "Removed.",
    "two_factor_on": "Two-factor authentication is on.",
    "two_factor_off": "Two-factor authentication is off.",
    "retried": "Dead job queued for a retry.",
    "joined": "You joined the workspace.",
    "sandbox_connected": "The sandbox knows this channel again.",
}


@dataclass
class Page:
    """One request of a logged-in person: who, where, what they may do; renders templates."""

    request: Request
    runtime: Runtime
    db: AsyncSession
    principal: UserPrincipal
    access: WorkspaceAccess | None = None
    memberships: list[tuple[Workspace, Membership]] = field(default_factory=list)

    @property
    def user(self) -> Any:
        return self.principal.user

    @property
    def granted(self) -> WorkspaceAccess:
        """The workspace access of a workspace page (always set there)."""
        assert self.access is not None
        return self.access

    @property
    def ws(self) -> uuid.UUID:
        return self.granted.workspace_id

    def can(self, permission: Permission | str) -> bool:
        return self.access is not None and self.access.can(Permission(permission))

    def url(self, path: str = "") -> str:
        return f"/app/w/{self.ws}/{path}".rstrip("/")

    def nav(self) -> list[tuple[str, str]]:
        return [(item.label, self.url(item.path)) for item in NAV if self.can(item.permission)]

    async def form(self) -> FormData:
        return await security.verify_csrf(self.request, self.runtime.settings)

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        base = {
            "page": self,
            "user": self.user,
            "access": self.access,
            "memberships": self.memberships,
        }
        return render(self.request, self.runtime, name, {**base, **context}, status_code)

    def redirect(self, path: str, notice: str | None = None) -> Response:
        return redirect(self.request, path, notice)


def render(
    request: Request,
    runtime: Runtime,
    name: str,
    context: Mapping[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    full = {
        "csrf_token": security.csrf_token(request, runtime.settings),
        "notice": notice,
        "path": request.url.path,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    security.persist_nonce(request, response, runtime.settings)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(request: Request, path: str, notice: str | None = None) -> Response:
    target = f"{path}{'&' if '?' in path else '?'}notice={notice}" if notice else path
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def viewer(request: Request, db: AsyncSession) -> UserPrincipal:
    token = request.cookies.get(security.SESSION_COOKIE)
    if not token:
        raise Unauthorized("Log in first.", code="not_authenticated")
    principal = await principal_from_session_token(
        runtime_of(request), db, token, request_ip(request.scope)
    )
    request.state.principal = principal  # the audit entries name this person
    return principal


async def user_page(request: Request, db: AsyncSession) -> Page:
    principal = await viewer(request, db)
    memberships = await workspace_repository.list_for_user(db, principal.user.id)
    return Page(request, runtime_of(request), db, principal, None, list(memberships))


async def workspace_page(
    request: Request, db: AsyncSession, ws: uuid.UUID, permission: Permission
) -> Page:
    page = await user_page(request, db)
    page.access = await access_for(page.principal, ws, db, page.runtime, permission)
    return page


def parse_form(model: type[M], data: Mapping[str, Any]) -> tuple[M | None, dict[str, str]]:
    """The model, or the errors per field to show next to each control."""
    try:
        return model.model_validate(dict(data)), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "__all__"
            errors.setdefault(name, plain_message(error))
        return None, errors


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _login_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += f"?{request.url.query}"
    location = f"/app/login?next={quote(target, safe='')}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def error_page(request: Request, exc: AppError) -> Response:
    if isinstance(exc, Unauthorized) and exc.code in (
        "not_authenticated",
        "session_expired",
        "invalid_token",
    ):
        response = _login_redirect(request)
        security.clear_cookie(response, runtime_of(request).settings, security.SESSION_COOKIE)
        return response
    context = {"status": exc.status_code, "code": exc.code, "message": exc.message}
    name = "fragments/error.html" if is_htmx(request) else "error.html"
    response = render(request, runtime_of(request), name, context, exc.status_code)
    if is_htmx(request):  # show the error where the answer would have gone
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


class PageRoute(APIRoute):
    """Routes that answer HTML: domain errors become an error page (or a login redirect),
    never the API's JSON envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except AppError as exc:
                return error_page(request, exc)
            except RequestValidationError:
                # Malformed ids in the path or query: nothing by that name here.
                return error_page(request, NotFound("There is no such page."))

        return handle


def ws_page(permission: Permission) -> Any:
    """`page: Annotated[Page, ws_page(Permission.X)]`: a workspace page for callers with X."""

    async def dependency(request: Request, ws: uuid.UUID, db: DbSession) -> Page:
        return await workspace_page(request, db, ws, permission)

    dependency.__name__ = f"page_{permission.value.replace(':', '_')}"
    return Depends(dependency)


async def _user_page(request: Request, db: DbSession) -> Page:
    return await user_page(request, db)


UserPage = Annotated[Page, Depends(_user_page)]


T = TypeVar("T")


async def attempt(db: AsyncSession, call: Callable[[], Awaitable[T]]) -> T:
    """Runs one API action in a savepoint: when it is refused, its partial work is undone (as
    the API's rollback would) while the page goes on to explain the refusal."""
    async with db.begin_nested():
        return await call()
