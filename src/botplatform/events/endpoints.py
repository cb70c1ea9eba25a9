"""The live-events WebSocket: a dashboard (or an API client) receives the workspace's events
as they happen, with the same payloads webhooks carry.

    GET /api/v1/workspaces/{ws}/events/ws    (WebSocket upgrade)
    Authorization: Bearer <session token or API key>   — or ?access_token=<token>, or the
    dashboard's session cookie from one of the platform's own pages (Origin checked)

Messages whose `type` starts with `live.` are the socket's own: `live.subscribed` once the
stream is open, `live.ping` when idle, `live.overflow` before closing a socket that fell too
far behind. Everything else is an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from botplatform.auth.dependencies import authenticate
from botplatform.authz.dependencies import WorkspaceAccess, workspace_access
from botplatform.authz.permissions import Permission
from botplatform.config import Settings
from botplatform.events.catalog import (
    BROADCAST_EVENTS,
    CONTACT_EVENTS,
    EVENT_TYPES,
    TEMPLATE_EVENTS,
)
from botplatform.events.live import Subscription
from botplatform.kit.errors import AppError, Forbidden, NotFound, Unauthorized
from botplatform.kit.middleware import request_ip
from botplatform.runtime import Runtime

router = APIRouter(prefix="/workspaces/{ws}", tags=["events"])
# The dashboard's session cookie: it holds the same session token the API hands out.
SESSION_COOKIE = "bp_session"
PING_SECONDS = 25.0
# Close codes: the 4000 range mirrors HTTP (RFC 6455 leaves it to applications).
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_RATE_LIMITED = 4401, 4403, 4404, 4429
CLOSE_TRY_LATER = 1013


def readable_types(access: WorkspaceAccess) -> frozenset[str]:
    """The event types this caller may see: conversation and message events need
    conversations:read, contact events contacts:read, template events templates:read,
    broadcast events broadcasts:read."""
    allowed = set()
    for event_type in EVENT_TYPES:
        needed = Permission.CONVERSATIONS_READ
        if event_type in CONTACT_EVENTS:
            needed = Permission.CONTACTS_READ
        elif event_type in TEMPLATE_EVENTS:
            needed = Permission.TEMPLATES_READ
        elif event_type in BROADCAST_EVENTS:
            needed = Permission.BROADCASTS_READ
        if access.can(needed):
            allowed.add(event_type)
    return frozenset(allowed)


def visible_channels(access: WorkspaceAccess) -> frozenset[str] | None:
    """Channels whose events the caller sees; None for all. An agent sees only the channels
    it is assigned to (`access.channel_ids`, the same list the REST API narrows by)."""
    if access.channel_ids is None:
        return None
    return frozenset(str(channel_id) for channel_id in access.channel_ids)


def _token(websocket: WebSocket, settings: Settings) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if websocket.query_params.get("access_token"):
        return websocket.query_params["access_token"]
    cookie = websocket.cookies.get(SESSION_COOKIE)
    if cookie and not _same_origin(websocket, settings):
        # A browser sends the cookie wherever the page that opens the socket comes from:
        # only pages of the platform itself (or CORS_ORIGINS) may use it.
        raise Forbidden("This origin may not open the dashboard's event stream.")
    return cookie or None


def _same_origin(websocket: WebSocket, settings: Settings) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:  # not a browser: no ambient cookie to abuse
        return True
    allowed = {settings.app_url.rstrip("/"), *(o.rstrip("/") for o in settings.cors_origins)}
    host = websocket.headers.get("host", "")
    return origin.rstrip("/") in allowed or urlsplit(origin).netloc == host


async def _authorize(runtime: Runtime, websocket: WebSocket, ws: uuid.UUID) -> WorkspaceAccess:
    token = _token(websocket, runtime.settings)
    if token is None:
        raise Unauthorized(
            "Send `Authorization: Bearer <token>`, ?access_token=, or the dashboard's cookie."
        )
    ip = request_ip(websocket.scope)
    decision = await runtime.ratelimiter.hit("general", ip)
    decision.raise_if_denied()
    async with runtime.db.unit_of_work(write=False) as db:
        principal = await authenticate(runtime, db, token, ip)
        return await workspace_access(db, runtime, principal, ws)


def _close_code(error: AppError) -> int:
    if isinstance(error, Unauthorized):
        return CLOSE_UNAUTHORIZED
    if isinstance(error, NotFound):
        return CLOSE_NOT_FOUND
    if isinstance(error, Forbidden):
        return CLOSE_FORBIDDEN
    return CLOSE_RATE_LIMITED if error.status_code == 429 else CLOSE_FORBIDDEN


@router.websocket("/events/ws")
async def live_events(websocket: WebSocket, ws: uuid.UUID) -> None:
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    try:
        access = await _authorize(runtime, websocket, ws)
    except AppError as exc:
        await websocket.close(_close_code(exc), exc.message[:120])
        return
    allowed = readable_types(access)
    if not allowed:
        await websocket.close(CLOSE_FORBIDDEN, "You may not read any events here.")
        return
    async with runtime.live.subscribe(ws) as subscription:
        await websocket.send_json(
            {"type": "live.subscribed", "workspace_id": str(ws), "event_types": sorted(allowed)}
        )
        await _pump(runtime, websocket, subscription, allowed, visible_channels(access))


def _visible(
    payload: dict[str, Any], allowed: frozenset[str], channels: frozenset[str] | None
) -> bool:
    if payload.get("type") not in allowed:
        return False
    if channels is None:
        return True
    data = payload.get("data", {})
    subject = data.get("message") or data.get("conversation") or data.get("template") or {}
    return subject.get("channel_id") in channels if "channel_id" in subject else True


async def _pump(
    runtime: Runtime,
    websocket: WebSocket,
    subscription: Subscription,
    allowed: frozenset[str],
    channels: frozenset[str] | None,
) -> None:
    closed = asyncio.create_task(_until_disconnected(websocket))
    try:
        while not closed.done():
            getter = asyncio.create_task(subscription.queue.get())
            done, _ = await asyncio.wait(
                {getter, closed}, timeout=PING_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
                allowed_still, access = await _still_allowed(runtime, websocket, subscription)
                if closed.done() or not allowed_still:
                    return
                if access is not None:  # an assignment change reaches an open socket too
                    channels = visible_channels(access)
                await websocket.send_json({"type": "live.ping"})
                continue
            payload = getter.result()
            if payload is None:  # fell too far behind
                await websocket.send_json({"type": "live.overflow"})
                await websocket.close(CLOSE_TRY_LATER, "Too far behind; reconnect.")
                return
            if _visible(payload, allowed, channels):
                await websocket.send_json(payload)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        closed.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await closed


async def _still_allowed(
    runtime: Runtime, websocket: WebSocket, subscription: Subscription
) -> tuple[bool, WorkspaceAccess | None]:
    """A logout, a revoked key or a removed membership ends the stream within a ping; the
    fresh access (None when rate limited) carries the caller's current channels."""
    try:
        access = await _authorize(runtime, websocket, subscription.workspace_id)
    except AppError as exc:
        if exc.status_code == 429:
            return True, None
        await websocket.close(_close_code(exc), exc.message[:120])
        return False, None
    return True, access


async def _until_disconnected(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
