"""Logging in (with the 2FA step), out, registering, password reset, invitations, and the
person's own account (2FA). Each action calls the API's own endpoint function, so the rules
and the audit entry are the API's."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from botplatform.audit.dependencies import Auditor
from botplatform.auth import endpoints as auth_api
from botplatform.auth.schemas import (
    LoginIn,
    LoginOut,
    PasswordForgotIn,
    PasswordResetIn,
    RegisterIn,
    TwoFactorDisableIn,
    TwoFactorEnableIn,
    TwoFactorVerifyIn,
)
from botplatform.branding import service as branding
from botplatform.branding.service import HostBrand
from botplatform.dashboard import security
from botplatform.dashboard.web import (
    PageRoute,
    UserPage,
    attempt,
    parse_form,
    redirect,
    render,
    runtime_of,
)
from botplatform.db import DbSession
from botplatform.invitation import endpoints as invitation_api
from botplatform.invitation.schemas import InvitationAccept
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import AppError
from botplatform.kit.middleware import request_ip

router = APIRouter(prefix="/app", route_class=PageRoute, include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only our own pages: no other host, no scheme-relative `//evil`."""
    if (
        target
        and target.startswith(("/app", "/admin"))
        and not target.startswith("//")
        and "\\" not in target
    ):
        return target
    return "/app"


async def _limit(request: Request) -> None:
    # The API's /auth/* tier, applied to the same actions taken from a browser.
    runtime = runtime_of(request)
    decision = await runtime.ratelimiter.hit("auth", request_ip(request.scope))
    decision.raise_if_denied()


def _start(request: Request, login: LoginOut, target: str) -> Response:
    settings = runtime_of(request).settings
    response = redirect(request, safe_next(target))
    lifetime = int((login.expires_at - utcnow()).total_seconds())
    security.set_cookie(response, settings, security.SESSION_COOKIE, login.access_token, lifetime)
    security.clear_cookie(response, settings, security.CHALLENGE_COOKIE)
    return response


async def _brand(request: Request, db: DbSession) -> HostBrand | None:
    """The branding of the workspace whose custom domain this page was asked on."""
    return await branding.for_host(db, request.headers.get("host", ""))


@router.get("/login")
async def login_form(
    request: Request, db: DbSession, next_: Annotated[str, Query(alias="next")] = ""
) -> Response:
    brand = await _brand(request, db)
    return render(request, runtime_of(request), "auth/login.html", {"next": next_, "brand": brand})


@router.post("/login")
async def login(request: Request, db: DbSession) -> Response:
    runtime = runtime_of(request)
    form = await security.verify_csrf(request, runtime.settings)
    target = str(form.get("next", ""))
    context = {"next": target, "email": form.get("email", ""), "brand": await _brand(request, db)}
    body, errors = parse_form(LoginIn, {k: form.get(k, "") for k in ("email", "password")})
    if body is None:
        return render(request, runtime, "auth/login.html", {**context, "errors": errors}, 422)
    try:
        await _limit(request)
        answer = await attempt(
            db, lambda: auth_api.login(body, request, db, runtime, Auditor(request, db))
        )
    except AppError as exc:
        # Wrong password, locked out, rate limited: said on the form, never a JSON page.
        return render(
            request, runtime, "auth/login.html", {**context, "error": exc.message}, exc.status_code
        )
    if isinstance(answer.data, LoginOut):
        return _start(request, answer.data, target)
    second_step = f"/app/login/2fa?next={quote(target, safe='')}" if target else "/app/login/2fa"
    response = redirect(request, second_step)
    ttl = runtime.settings.two_factor_challenge_seconds
    security.set_cookie(
        response, runtime.settings, security.CHALLENGE_COOKIE, answer.data.challenge_token, ttl
    )
    return response


@router.get("/login/2fa")
async def two_factor_form(
    request: Request, next_: Annotated[str, Query(alias="next")] = ""
) -> Response:
    if not request.cookies.get(security.CHALLENGE_COOKIE):
        return redirect(request, "/app/login")
    return render(request, runtime_of(request), "auth/two_factor.html", {"next": next_})


@router.post("/login/2fa")
async def two_factor(request: Request, db: DbSession) -> Response:
    runtime = runtime_of(request)
    form = await security.verify_csrf(request, runtime.settings)
    target = str(form.get("next", ""))
    challenge = request.cookies.get(security.CHALLENGE_COOKIE, "")
    fields = {
        "challenge_token": challenge,
        "code": form.get("code") or None,
        "recovery_code": form.get("recovery_code") or None,
    }
    body, _errors = parse_form(TwoFactorVerifyIn, fields)
    try:
        if body is None:
            raise AppError("Enter the 6-digit code from your app, or a recovery code.")
        await _limit(request)
        answer = await attempt(
            db, lambda: auth_api.verify_two_factor(body, db, runtime, Auditor(request, db))
        )
    except AppError as exc:
        expired = exc.code == "challenge_expired" or not challenge
        context = {"next": target, "error": exc.message, "expired": expired}
        return render(request, runtime, "auth/two_factor.html", context, exc.status_code)
    return _start(request, answer.data, target)


@router.post("/logout")
async def logout(request: Request, page: UserPage) -> Response:
    await page.form()
    await auth_api.logout(page.principal, page.runtime, Auditor(request, page.db))
    response = redirect(request, "/app/login", "logged_out")
    security.clear_cookie(response, page.runtime.settings, security.SESSION_COOKIE)
    return response


@router.post("/logout-all")
async def logout_everywhere(request: Request, page: UserPage) -> Response:
    """Ends every session of the person, this browser's included."""
    await page.form()
    await auth_api.logout_all(page.principal, page.runtime, Auditor(request, page.db))
    response = redirect(request, "/app/login", "logged_out")
    security.clear_cookie(response, page.runtime.settings, security.SESSION_COOKIE)
    return response


@router.get("/register")
async def register_form(
    request: Request, next_: Annotated[str, Query(alias="next")] = ""
) -> Response:
    return render(request, runtime_of(request), "auth/register.html", {"next": next_})


@router.post("/register")
async def register(request: Request, db: DbSession) -> Response:
    runtime = runtime_of(request)
    form = await security.verify_csrf(request, runtime.settings)
    target = str(form.get("next", ""))
    fields = {k: form.get(k, "") for k in ("email", "password", "name")}
    context = {"next": target, "email": fields["email"], "name": fields["name"]}
    body, errors = parse_form(RegisterIn, fields)
    try:
        if body is None:
            return render(
                request, runtime, "auth/register.html", {**context, "errors": errors}, 422
            )
        await _limit(request)
        answer = await attempt(
            db, lambda: auth_api.register(body, db, runtime, Auditor(request, db))
        )
    except AppError as exc:
        context["error"] = exc.message
        return render(request, runtime, "auth/register.html", context, exc.status_code)
    return _start(request, answer.data, target)


@router.get("/password/forgot")
async def forgot_form(request: Request) -> Response:
    return render(request, runtime_of(request), "auth/forgot.html")


@router.post("/password/forgot")
async def forgot(request: Request, db: DbSession) -> Response:
    runtime = runtime_of(request)
    form = await security.verify_csrf(request, runtime.settings)
    body, errors = parse_form(PasswordForgotIn, {"email": form.get("email", "")})
    if body is None:
        return render(request, runtime, "auth/forgot.html", {"errors": errors}, 422)
    try:
        await _limit(request)
    except AppError as exc:
        return render(request, runtime, "auth/forgot.html", {"error": exc.message}, 429)
    await auth_api.forgot_password(body, db, runtime, Auditor(request, db))
    return redirect(request, "/app/login", "reset_sent")


@router.get("/password/reset")
async def reset_form(
    request: Request, token: Annotated[str, Query(max_length=2000)] = ""
) -> Response:
    return render(request, runtime_of(request), "auth/reset.html", {"token": token})


@router.post("/password/reset")
async def reset(request: Request, db: DbSession) -> Response:
    runtime = runtime_of(request)
    form = await security.verify_csrf(request, runtime.settings)
    fields = {
        "token": form.get("token", ""),
        "password": form.get("password", ""),
        "code": form.get("code") or None,
        "recovery_code": form.get("recovery_code") or None,
    }
    context = {"token": fields["token"]}
    body, errors = parse_form(PasswordResetIn, fields)
    try:
        if body is None:
            return render(request, runtime, "auth/reset.html", {**context, "errors": errors}, 422)
        await _limit(request)
        await attempt(db, lambda: auth_api.reset_password(body, db, runtime, Auditor(request, db)))
    except AppError as exc:
        context["error"] = exc.message
        return render(request, runtime, "auth/reset.html", context, exc.status_code)
    response = redirect(request, "/app/login", "password_changed")
    security.clear_cookie(response, runtime.settings, security.SESSION_COOKIE)
    return response


@router.get("/invitations/accept")
async def invitation_form(
    request: Request, page: UserPage, token: Annotated[str, Query(max_length=1000)] = ""
) -> Response:
    return page.render("auth/invitation.html", token=token)


@router.post("/invitations/accept")
async def accept_invitation(request: Request, page: UserPage) -> Response:
    form = await page.form()
    body, _errors = parse_form(InvitationAccept, {"token": form.get("token", "")})
    try:
        if body is None:
            raise AppError("This invitation link is not valid.", code="invitation_invalid")
        answer = await attempt(
            page.db,
            lambda: invitation_api.accept_invitation(
                body, page.principal, page.db, page.runtime, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return page.render(
            "auth/invitation.html", exc.status_code, token=form.get("token", ""), error=exc.message
        )
    return redirect(request, f"/app/w/{answer.data.workspace_id}", "joined")


# --- the person's own account: two-factor authentication ---------------------------------


@router.get("/account")
async def account(page: UserPage) -> Response:
    return page.render("app/account.html")


@router.post("/account/2fa/setup")
async def two_factor_setup(request: Request, page: UserPage) -> Response:
    await page.form()
    answer = await auth_api.setup_two_factor(page.principal, page.db, Auditor(request, page.db))
    return page.render("app/account.html", provisioning=answer.data)


@router.post("/account/2fa/enable")
async def two_factor_enable(request: Request, page: UserPage) -> Response:
    form = await page.form()
    body, _errors = parse_form(TwoFactorEnableIn, {"code": form.get("code", "")})
    try:
        if body is None:
            raise AppError("Enter the 6-digit code from your app.", code="invalid_code")
        answer = await attempt(
            page.db,
            lambda: auth_api.enable_two_factor(
                body, page.principal, page.db, page.runtime, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return page.render("app/account.html", exc.status_code, enable_error=exc.message)
    return page.render("app/account.html", recovery_codes=answer.data.recovery_codes)


@router.post("/account/2fa/disable")
async def two_factor_disable(request: Request, page: UserPage) -> Response:
    form = await page.form()
    fields = {
        "password": form.get("password", ""),
        "code": form.get("code") or None,
        "recovery_code": form.get("recovery_code") or None,
    }
    body, _errors = parse_form(TwoFactorDisableIn, fields)
    try:
        if body is None:
            raise AppError("Enter your password and a current code.", code="invalid_code")
        await attempt(
            page.db,
            lambda: auth_api.disable_two_factor(
                body, page.principal, page.db, page.runtime, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return page.render("app/account.html", exc.status_code, disable_error=exc.message)
    return redirect(request, "/app/account", "two_factor_off")
