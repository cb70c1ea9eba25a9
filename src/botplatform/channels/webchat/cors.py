"""Cross-origin answers for the visitor API. The widget runs on the customer's site and
calls /widget/ with a bearer token (no cookies), so the browser asks first (a preflight)
and reads an answer only if it names the page's origin. The allow-list itself is enforced
by the routes on every request and socket (`service.check_origin`); here the origin is
echoed so that a refusal is readable by the widget too, and credentials are never allowed."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/widget/"
_ALLOW = [
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type"),
    (b"access-control-max-age", b"600"),
]


class WidgetCorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        origin = dict(scope["headers"]).get(b"origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        echoed = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204,
                        "headers": [*echoed, *_ALLOW]})  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *echoed]
            await send(message)

        await self.app(scope, receive, with_origin)
