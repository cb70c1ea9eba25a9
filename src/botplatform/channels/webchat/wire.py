"""A message as the widget shows it, the same shape whether it is pushed on the socket
when sent or read back from the history. Text is data: the widget sets it as text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botplatform.channels.messages import OutboundMessage
from botplatform.channels.webchat.parse import OUTBOUND_PREFIX
from botplatform.models import Message


def _actions(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "buttons": [{"id": b["id"], "title": b["title"]} for b in request.get("buttons") or []],
        "list_button": request.get("list_button"),
        "sections": [
            {
                "title": s.get("title", ""),
                "rows": [
                    {"id": r["id"], "title": r["title"], "description": r.get("description")}
                    for r in s.get("rows", [])
                ],
            }
            for s in request.get("sections") or []
        ],
    }


def _media(link: str | None, mime: str | None, filename: str | None) -> dict[str, Any] | None:
    return {"url": link, "mime": mime, "filename": filename} if link else None


def of_outbound(message: OutboundMessage, at: datetime) -> dict[str, Any]:
    """A reply as the adapter sends it down the socket."""
    content = message.content
    media = content.media
    message_id = message.callback_data or message.idempotency_key
    request = {
        "buttons": [{"id": b.id, "title": b.title} for b in message.buttons],
        "list_button": message.list_button,
        "sections": [
            {"title": s.title, "rows": [vars(r) for r in s.rows]} for s in message.sections
        ],
    }
    return {
        "id": message_id,
        "pid": f"{OUTBOUND_PREFIX}{message_id}",
        "direction": "outbound",
        "type": content.type.value,
        "text": "\n\n".join(p for p in (message.header, content.text, message.footer) if p),
        **_actions(request),
        "media": _media(media.url, media.mime_type, media.filename) if media else None,
        "status": "sent",
        "at": at.isoformat(),
    }


def of_row(row: Message, media_url: str | None) -> dict[str, Any]:
    """A stored message of the visitor's conversation (the history and the long-poll)."""
    request = row.content.get("request") if row.direction == "outbound" else None
    request = request if isinstance(request, dict) else {}
    text = row.text
    if request:
        text = "\n\n".join(p for p in (request.get("header"), row.text, request.get("footer")) if p)
    media = request.get("media") if request else None
    link = media.get("link") if isinstance(media, dict) else None
    return {
        "id": str(row.id),
        "pid": row.provider_message_id,
        "direction": row.direction,
        "type": row.type,
        "text": text,
        **_actions(request),
        "media": _media(media_url or link, row.media_mime, _filename(row)),
        "status": row.status,
        "at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _filename(row: Message) -> str | None:
    media = row.content.get("media")
    return media.get("filename") if isinstance(media, dict) else None
