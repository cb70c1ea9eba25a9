"""Pure ASGI middleware: request id and access log, body size limit and content type.

Pure ASGI (not BaseHTTPMiddleware) so they add no task hop and keep contextvars intact.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import sentry_sdk
import structlog

from botplatform.kit.client_ip import client_ip, parse_networks
from botplatform.kit.envelope import error_from, error_response
from botplatform.kit.errors import PayloadTooLarge, UnsupportedMediaType
from botplatform.kit.logging import get_logger

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
ACCESS_LOGGER = "botplatform.access"
access_log = get_logger(ACCESS_LOGGER)
error_log = get_logger("botplatform.errors")


def access_logged() -> bool:
    """Whether access lines are written at all (LOG_LEVEL INFO or below): when they are not,
    the request skips building one (structlog runs its processors before the level filter)."""
    return logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when well-formed, else a new one."""
    incoming = _header(scope, b"x-request-id")
    return incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestContextMiddleware:
    """Gives every request an id (the caller's X-Request-ID when well-formed), binds it to
    every log line of the request, returns it as a header and writes one access line."""

    def __init__(self, app: ASGIApp, trusted_proxies: list[str] | None = None) -> None:
        self.app = app
        self.trusted = parse_networks(trusted_proxies or [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        ip = client_ip(scope, self.trusted)
        scope.setdefault("state", {})["client_ip"] = ip
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Caught here rather than by Starlette's outermost handler so that the 500 also
            # carries the request id; internals go to the log, never to the client.
            error_log.exception("unhandled_error", path=scope.get("path"))
            # Swallowed here, so Sentry's own hook never sees it: report it (no-op without
            # SENTRY_DSN).
            sentry_sdk.capture_exception()
            if scope["type"] != "http" or status != 500 or response_started:
                raise
            response = error_response(500, "internal_error", "An unexpected error occurred.")
            await response(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http" and access_logged():
                access_log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    client=ip,
                )
            structlog.contextvars.clear_contextvars()


class BodyGuardMiddleware:
    """Refuses bodies over the size limit (413) and non-JSON bodies on the JSON API (415),
    in the envelope, before any route runs. The body is read once and replayed downstream,
    so a handler that needs the raw bytes (webhook signatures) still gets them."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_upload_bytes: int | None = None,
        json_prefix: str = "/api/",
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes or max_body_bytes
        self.json_prefix = json_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if _is_multipart(scope) else self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._too_large(scope, receive, send, limit)
                return
        accepted = _is_json(scope) or _is_multipart(scope)
        if body and scope["path"].startswith(self.json_prefix) and not accepted:
            await error_from(UnsupportedMediaType())(scope, receive, send)
            return
        await self.app(scope, replay_body(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        too_large = PayloadTooLarge(
            f"The request body is larger than {limit} bytes.", details={"max_bytes": limit}
        )
        await error_from(too_large, headers={"connection": "close"})(scope, receive, send)


def _is_json(scope: Scope) -> bool:
    content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def _is_multipart(scope: Scope) -> bool:
    # File uploads (media); everything else under /api/ is JSON.
    content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    return content_type == "multipart/form-data"


def replay_body(body: bytes, receive: Receive, *, more_body: bool = False) -> Receive:
    """A `receive` that gives `body` (already read; the start of it when `more_body`) first,
    then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more_body}
        return await receive()

    return replay


def request_ip(scope: Scope) -> str:
    """The client IP that RequestContextMiddleware worked out for this request."""
    return str(scope.get("state", {}).get("client_ip") or (scope.get("client") or ("", 0))[0])


class SecurityHeadersMiddleware:
    """CSP, frame-ancestors, nosniff, Referrer-Policy on every response; HSTS under https."""

    API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    # The interactive API docs page: Swagger UI's script and style from our own static folder,
    # started by our own script (no inline script). Swagger UI sets element styles and shows
    # its icons as data: images; "Try it out" calls the API on this origin.
    DOCS_POLICY = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )

    # The dashboard: our own scripts and styles only (htmx is served from our static folder),
    # no inline script or style, forms post only to us.
    DASHBOARD_POLICY = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; object-src 'none'"
    )

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    def _policy(self, path: str) -> str:
        if path == "/api/docs":
            return self.DOCS_POLICY
        if path == "/app" or path.startswith(("/app/", "/admin")):
            return self.DASHBOARD_POLICY
        return self.API_POLICY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = security_headers(self._policy(scope["path"]), self.hsts, scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)


_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def security_headers(policy: str, hsts: bool, scope: Scope) -> list[tuple[bytes, bytes]]:
    """What `SecurityHeadersMiddleware` adds to a response under `policy`; HSTS when the
    platform is served over https (`hsts`) or this request came that way."""
    headers = [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if hsts or scope.get("scheme") == "https":
        headers.append(_HSTS)
    return headers
