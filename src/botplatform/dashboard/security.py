"""The browser's side of authentication: the session cookie and CSRF protection.

The session cookie holds the same session token the API hands out (a signed JWT naming a
server-side session), so logout, "log out everywhere" and expiry work identically for both.
CSRF: a signed double-submit token. A random nonce lives in an HttpOnly cookie; forms carry
HMAC(secret, nonce + session) as a hidden field, htmx sends it as the `X-CSRF-Token` header.
A forged cross-site request has neither the cookie's nonce nor the key to sign one.
"""

from __future__ import annotations

import hmac

from fastapi import Request, Response
from starlette.datastructures import FormData

from botplatform.config import Settings
from botplatform.kit.errors import Forbidden
from botplatform.kit.tokens import derive_key, random_token, sha256_hex

SESSION_COOKIE = "bp_session"
CSRF_COOKIE = "bp_csrf"
CHALLENGE_COOKIE = "bp_2fa"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _secure(settings: Settings) -> bool:
    return settings.app_url.startswith("https://")


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=_secure(settings),
        samesite="lax",
        path="/",
    )


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(name, path="/", secure=_secure(settings), httponly=True)


def csrf_nonce(request: Request) -> str:
    """This browser's nonce: the cookie's, or a new one (set on the response by `render`)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing
    nonce: str | None = getattr(request.state, "new_csrf_nonce", None)
    if nonce is None:
        nonce = random_token(24)
        request.state.new_csrf_nonce = nonce
    return nonce


def _binding(request: Request) -> str:
    # Bound to the session as well: a token seen before login is worthless after it.
    session = request.cookies.get(SESSION_COOKIE)
    return sha256_hex(session) if session else "anonymous"


def csrf_token(request: Request, settings: Settings) -> str:
    key = derive_key(settings.signing_key, "dashboard-csrf")
    message = f"{csrf_nonce(request)}:{_binding(request)}".encode()
    return hmac.new(key, message, "sha256").hexdigest()


def persist_nonce(request: Request, response: Response, settings: Settings) -> None:
    nonce = getattr(request.state, "new_csrf_nonce", None)
    if nonce is not None and request.cookies.get(CSRF_COOKIE) != nonce:
        set_cookie(response, settings, CSRF_COOKIE, nonce, max_age=None)


async def verify_csrf(request: Request, settings: Settings) -> FormData:
    """The submitted form, once its CSRF token (field or header) proves it came from one of our
    pages in this browser; 403 otherwise."""
    form = await request.form()
    if request.method in SAFE_METHODS:
        return form
    sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not request.cookies.get(CSRF_COOKIE) or not isinstance(sent, str):
        raise Forbidden("The form has expired; reload the page and try again.", code="csrf_failed")
    if not hmac.compare_digest(sent, csrf_token(request, settings)):
        raise Forbidden("The form has expired; reload the page and try again.", code="csrf_failed")
    return form
