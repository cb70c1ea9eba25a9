"""The visitor API: what the widget on a customer's site calls. Every request and socket
names its channel, comes from an origin on the channel's allow-list, and (after the session)
carries the visitor's signed token; a visitor reads and writes their own conversation only.

  GET  /widget/{channel_id}.js          the widget (one cacheable script)
  POST /widget/{channel_id}/session     a visitor token (new, renewed, or a verified user)
  GET  /widget/{channel_id}/messages    the history; with `since` and `wait`, a long-poll
  POST /widget/{channel_id}/messages    a visitor message (deduplicated by client_id)
  POST /widget/{channel_id}/uploads     a file (image, PDF, text) with an optional caption
  POST /widget/{channel_id}/read        read receipts for replies
  POST /widget/{channel_id}/profile     name / email (for replies while away)
  WS   /widget/{channel_id}/socket      pushes replies, typing and "seen"; takes messages
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile, WebSocket
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from botplatform.channels.intake import WebhookChannel
from botplatform.channels.webchat import script
from botplatform.channels.webchat import service as visitors
from botplatform.channels.webchat.hub import hub_for
from botplatform.channels.webchat.parse import OUTBOUND_PREFIX
from botplatform.channels.webchat.schemas import (
    Accepted,
    ProfileIn,
    ReadIn,
    SessionIn,
    SessionOut,
    VisitorMessageIn,
)
from botplatform.channels.webchat.service import Said
from botplatform.channels.webchat.site import Site
from botplatform.channels.webchat.tokens import Visitor, VisitorTokenInvalid, VisitorTokens
from botplatform.conversation.service import contact_for
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import AppError, PayloadTooLarge
from botplatform.kit.middleware import request_ip
from botplatform.media.storage import (
    ALLOWED_MIME_TYPES,
    MediaRejected,
    check_media,
    media_key,
)
from botplatform.runtime import Runtime, RuntimeDep

router = APIRouter(prefix="/widget", tags=["widget"])
#: How long a client id is remembered for deduplication.
CLIENT_ID_SECONDS = 86400
#: The largest socket frame a visitor may send (a message is at most 4,096 characters).
MAX_FRAME = 32 * 1024


def tokens_of(runtime: Runtime) -> VisitorTokens:
    settings = runtime.settings
    return VisitorTokens(settings.signing_key, settings.webchat_token_ttl_seconds)


async def _limit_ip(runtime: Runtime, ip: str) -> None:
    (await runtime.ratelimiter.hit("webchat_ip", ip)).raise_if_denied()


async def _limit_visitor(runtime: Runtime, channel_id: uuid.UUID, visitor: str) -> None:
    (await runtime.ratelimiter.hit("webchat_visitor", f"{channel_id}/{visitor}")).raise_if_denied()


class SiteCall:
    """A widget request: the channel (active, webchat), the origin allowed, the IP within
    its rate; `visitor` after the token is read."""

    def __init__(self, channel: WebhookChannel, site: Site, runtime: Runtime) -> None:
        self.channel = channel
        self.site = site
        self.runtime = runtime


async def site_call(channel_id: uuid.UUID, request: Request, runtime: RuntimeDep) -> SiteCall:
    await _limit_ip(runtime, request_ip(request.scope))
    channel = await runtime.intake.channel("webchat", channel_id)
    site = visitors.check_origin(channel, request.headers.get("origin"))
    return SiteCall(channel, site, runtime)


Site_ = Annotated[SiteCall, Depends(site_call)]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise VisitorTokenInvalid()
    return token.strip()


async def visitor_of(call: Site_, request: Request) -> tuple[SiteCall, Visitor]:
    return call, tokens_of(call.runtime).read(_bearer(request), call.channel.id)


VisitorCall = Annotated[tuple[SiteCall, Visitor], Depends(visitor_of)]


@router.get("/{channel_id}.js", response_class=Response, include_in_schema=True)
async def widget_script(channel_id: uuid.UUID, request: Request, runtime: RuntimeDep) -> Response:
    """The widget: plain JavaScript, no framework, cacheable (ETag); any page may load it, but
    only the channel's allowed origins can use the API it calls."""
    await runtime.intake.channel("webchat", channel_id)
    return script.response(str(channel_id), runtime.settings.app_url, request)


@router.post("/{channel_id}/session", response_model=Envelope[SessionOut])
async def start_session(call: Site_, body: SessionIn, db: DbSession) -> Envelope[SessionOut]:
    """A visitor token for this browser: the one it holds renewed (same conversation), a new
    visitor, or a logged-in user of the site (`user_id` + a valid `user_hash`; a wrong hash
    is refused with 403, never merged)."""
    tokens = tokens_of(call.runtime)
    current = None
    if body.token:
        with contextlib.suppress(VisitorTokenInvalid):
            current = tokens.read(body.token, call.channel.id)
    external_id = visitors.visitor_id(call.channel, current, body.user_id, body.user_hash)
    token, visitor = tokens.issue(call.channel.id, external_id)
    widget = await visitors.appearance(db, call.channel, call.site)
    return ok(
        SessionOut(
            token=token,
            expires_at=datetime.fromtimestamp(visitor.expires_at).astimezone(),
            visitor_id=external_id,
            widget=widget,
        )
    )


async def _accept(call: SiteCall, visitor: Visitor, client_id: str, fields: dict[str, Any]) -> bool:
    """Stores one visitor message through the channel intake; False when this client id was
    already taken (a retry, or the same message over the other transport)."""
    runtime = call.runtime
    await _limit_visitor(runtime, call.channel.id, visitor.external_id)
    seen = f"webchat:client:{call.channel.id}:{visitor.external_id}:{client_id}"
    if not await runtime.kv.put_if_absent(seen, "1", CLIENT_ID_SECONDS):
        return False
    said = Said("message", visitor.external_id, {"client_id": client_id, **fields})
    try:
        await runtime.intake.store(call.channel, said.body())
    except BaseException:
        await runtime.kv.delete(seen)  # not stored: the client's retry must get through
        raise
    return True


def _message_fields(body: VisitorMessageIn) -> dict[str, Any]:
    if body.reply is None and body.text is None:
        raise AppError("A message needs text or a reply.", code="validation_error")
    fields: dict[str, Any] = {"text": body.text, "name": body.name}
    if body.reply is not None:
        fields["reply"] = body.reply.model_dump()
    return fields


@router.post("/{channel_id}/messages", response_model=Envelope[Accepted])
async def send_message(call: VisitorCall, body: VisitorMessageIn) -> Envelope[Accepted]:
    """A visitor's message. It takes the same path as a provider's webhook (stored, then
    processed by a job: contact, conversation, bots, automations, inbox, webhooks)."""
    site, visitor = call
    new = await _accept(site, visitor, body.client_id, _message_fields(body))
    return ok(Accepted(client_id=body.client_id, duplicate=not new))


@router.get("/{channel_id}/messages", response_model=Envelope[list[dict[str, Any]]])
async def read_messages(
    call: VisitorCall,
    since: datetime | None = Query(None, description="Only what is new or changed since"),
    wait: bool = Query(False, description="Long-poll: hold until news or the poll timeout"),
) -> Envelope[list[dict[str, Any]]]:
    """The visitor's conversation (newest 100, oldest first). With `wait`, the fallback
    transport: answers at once if anything is new since `since`, else when a reply is
    pushed, else empty after WEBCHAT_POLL_SECONDS."""
    site, visitor = call
    runtime = site.runtime
    hub = hub_for(runtime.settings.redis_url)
    async with hub.subscribe(str(site.channel.id), visitor.external_id) as feed:
        found = await _history(runtime, site.channel, visitor, since)
        if found or not wait:
            return ok(found)
        await feed.wait(runtime.settings.webchat_poll_seconds)
        return ok(await _history(runtime, site.channel, visitor, since))


async def _history(
    runtime: Runtime, channel: WebhookChannel, visitor: Visitor, since: datetime | None
) -> list[dict[str, Any]]:
    # Its own short unit of work: a long-poll holds no database connection while it waits.
    async with runtime.db.unit_of_work(write=False) as db:
        return await visitors.history(db, channel, visitor.external_id, since, runtime.media_urls)


@router.post("/{channel_id}/read", response_model=Envelope[dict[str, int]])
async def mark_read(call: VisitorCall, body: ReadIn) -> Envelope[dict[str, int]]:
    """Read receipts: the replies the visitor has seen (their `pid`s) become `read`."""
    site, visitor = call
    return ok({"read": await _store_read(site, visitor, body)})


async def _store_read(call: SiteCall, visitor: Visitor, body: ReadIn) -> int:
    ids = [i for i in body.ids if i.startswith(OUTBOUND_PREFIX)]
    if ids:
        said = Said("read", visitor.external_id, {"ids": ids})
        await call.runtime.intake.store(call.channel, said.body())
    return len(ids)


@router.post("/{channel_id}/profile", response_model=Envelope[dict[str, bool]])
async def set_profile(
    call: VisitorCall, body: ProfileIn, db: DbSession
) -> Envelope[dict[str, bool]]:
    """The pre-chat form: the visitor's name and email on their contact."""
    site, visitor = call
    await _limit_visitor(site.runtime, site.channel.id, visitor.external_id)
    await visitors.enter(db, site.channel)
    contact = await contact_for(db, site.channel.channel, visitor.external_id, body.name)
    if body.email:
        contact.attributes = {**(contact.attributes or {}), "email": str(body.email)}
    return ok({"saved": True})


@router.post("/{channel_id}/uploads", response_model=Envelope[Accepted])
async def upload(
    call: VisitorCall,
    file: Annotated[UploadFile, File(description="An image, PDF or text file")],
    client_id: Annotated[str, Form(pattern=r"^[A-Za-z0-9_-]{8,64}$")],
    caption: Annotated[str | None, Form(max_length=1024)] = None,
) -> Envelope[Accepted]:
    """A file from the visitor, checked by its bytes (WEBCHAT_MAX_UPLOAD_BYTES, the media
    types the platform takes), stored, then sent as a message like any other."""
    site, visitor = call
    runtime = site.runtime
    limit = runtime.settings.webchat_max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"Files are limited to {limit // 1024} KiB.", code="file_too_large")
    try:
        mime = check_media(data, file.content_type)
    except MediaRejected as exc:
        raise AppError(str(exc), code="file_rejected", details={"reason": exc.reason}) from exc
    ws = site.channel.workspace_id
    key = media_key(ws, hashlib.sha256(data).hexdigest(), ALLOWED_MIME_TYPES[mime])
    await runtime.media.put(key, data, mime)
    name = (file.filename or "file")[-100:]
    fields = {"text": caption or None, "media": {"key": key, "mime": mime, "filename": name}}
    new = await _accept(site, visitor, client_id, fields)
    return ok(Accepted(client_id=client_id, duplicate=not new))


# --- the socket ----------------------------------------------------------------------------


async def _socket_visitor(websocket: WebSocket, channel_id: uuid.UUID) -> SiteCall | None:
    runtime: Runtime = websocket.app.state.runtime
    try:
        await _limit_ip(runtime, request_ip(websocket.scope))
        channel = await runtime.intake.channel("webchat", channel_id)
        site = visitors.check_origin(channel, websocket.headers.get("origin"))
    except AppError:
        await websocket.close(code=1008)  # policy violation: refused before accepting
        return None
    return SiteCall(channel, site, runtime)


@router.websocket("/{channel_id}/socket")
async def socket(websocket: WebSocket, channel_id: uuid.UUID) -> None:
    """The live transport. The first frame is `{"type": "hello", "token": …}`; then the
    server pushes `message`, `typing` and `seen` events and acknowledges what the visitor
    sends (`message`, `read`) with `ack`."""
    call = await _socket_visitor(websocket, channel_id)
    if call is None:
        return
    await websocket.accept()
    try:
        hello = await asyncio.wait_for(websocket.receive_json(), 10)
        visitor = tokens_of(call.runtime).read(str(hello.get("token", "")), channel_id)
    except (TimeoutError, VisitorTokenInvalid, ValueError, AttributeError):
        await websocket.close(code=4401)
        return
    except WebSocketDisconnect:
        return
    hub = hub_for(call.runtime.settings.redis_url)
    async with hub.subscribe(str(channel_id), visitor.external_id) as feed:
        await websocket.send_json({"type": "ready", "visitor_id": visitor.external_id})
        # News goes out from the hub's fan-out as it comes: an idle socket holds no task or
        # queue of its own besides this one reading the visitor's frames.
        feed.push_to(websocket.send_json)
        with contextlib.suppress(WebSocketDisconnect):
            await _take(websocket, call, visitor)


async def _take(websocket: WebSocket, call: SiteCall, visitor: Visitor) -> None:
    while True:
        frame = await websocket.receive_text()
        if len(frame) > MAX_FRAME:
            await websocket.close(code=1009)
            return
        try:
            await websocket.send_json(await _handle(call, visitor, frame))
        except AppError as exc:
            await websocket.send_json({"type": "error", "code": exc.code, "message": exc.message})


async def _handle(call: SiteCall, visitor: Visitor, frame: str) -> dict[str, Any]:
    try:
        data = json.loads(frame)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "message":
            body = VisitorMessageIn.model_validate({k: v for k, v in data.items() if k != "type"})
            new = await _accept(call, visitor, body.client_id, _message_fields(body))
            return {"type": "ack", "client_id": body.client_id, "duplicate": not new}
        if kind == "read":
            read = await _store_read(call, visitor, ReadIn.model_validate({"ids": data.get("ids")}))
            return {"type": "ack", "read": read}
        if kind == "ping":
            return {"type": "pong"}
    except (ValueError, ValidationError) as exc:
        raise AppError("That frame is not valid.", code="validation_error") from exc
    raise AppError("Unknown frame type.", code="validation_error")
