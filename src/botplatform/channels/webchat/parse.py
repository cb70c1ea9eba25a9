"""The raw events the visitor API stores (one JSON object per visitor action) → normalized
events. The visitor API writes these bodies itself, through the same durable intake as a
provider's webhook, so bots, automations, the inbox and webhooks see a visitor like any
other customer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botplatform.channels.base import MalformedPayload, load_json
from botplatform.channels.messages import (
    Content,
    DeliveryStatus,
    InboundEvent,
    InboundMessage,
    Media,
    MessageType,
    Reply,
    StatusUpdate,
)

#: Outbound provider ids carry this prefix and our message id.
OUTBOUND_PREFIX = "wc:"


def message_id(visitor: str, client_id: str) -> str:
    """A visitor message's provider id: the client's own id for it, so a message the widget
    sends twice (a retry, a second transport) is stored once."""
    return f"{visitor}:{client_id}"


def _str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


def _timestamp(body: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(body["at"]))
    except (KeyError, ValueError) as exc:
        raise MalformedPayload("webchat: no valid 'at'") from exc


def _content(body: dict[str, Any]) -> Content:
    reply = body.get("reply")
    if isinstance(reply, dict):
        title = str(reply.get("title", ""))
        return Content(
            type=MessageType.INTERACTIVE,
            text=title,
            reply=Reply(kind="button_reply", id=str(reply.get("id", "")), title=title),
        )
    media = body.get("media")
    if isinstance(media, dict):
        mime = str(media.get("mime", "application/octet-stream"))
        kind = MessageType.IMAGE if mime.startswith("image/") else MessageType.DOCUMENT
        return Content(
            type=kind,
            text=_str(body, "text"),
            media=Media(
                provider_media_id=str(media.get("key", "")),
                mime_type=mime,
                filename=_str(media, "filename"),
                caption=_str(body, "text"),
            ),
        )
    return Content(type=MessageType.TEXT, text=_str(body, "text") or "")


def _message(body: dict[str, Any], visitor: str) -> InboundMessage:
    client_id = _str(body, "client_id")
    if not client_id:
        raise MalformedPayload("webchat: a message needs its client_id")
    return InboundMessage(
        provider_message_id=message_id(visitor, client_id),
        sender_id=visitor,
        sender_name=_str(body, "name"),
        timestamp=_timestamp(body),
        content=_content(body),
        raw=body,
    )


def _read(body: dict[str, Any], visitor: str) -> list[InboundEvent]:
    ids = body.get("ids")
    if not isinstance(ids, list):
        raise MalformedPayload("webchat: a read receipt needs its ids")
    at = _timestamp(body)
    return [
        StatusUpdate(provider_message_id=i, status=DeliveryStatus.READ, timestamp=at,
                     recipient_id=visitor, raw=body)
        for i in ids
        if isinstance(i, str) and i.startswith(OUTBOUND_PREFIX)
    ]  # fmt: skip


def parse(raw: bytes) -> list[InboundEvent]:
    body = load_json(raw)
    if not isinstance(body, dict) or not isinstance(body.get("visitor"), str):
        raise MalformedPayload("webchat: not a visitor event")
    visitor = body["visitor"]
    kind = body.get("kind")
    if kind == "message":
        return [_message(body, visitor)]
    if kind == "read":
        return _read(body, visitor)
    raise MalformedPayload(f"webchat: unknown kind {str(kind)[:40]!r}")
