"""The `data` of each event, built from the rows. Plain JSON types only: ids and times as
strings, so the same dict is stored, signed, sent and streamed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from botplatform.models import Contact, Conversation, Message


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def message(row: Message, contact_id: uuid.UUID | None) -> dict[str, Any]:
    error = None
    if row.error_code or row.error_title:
        error = {"code": row.error_code, "title": row.error_title}
    return {
        "id": str(row.id),
        "conversation_id": str(row.conversation_id),
        "channel_id": str(row.channel_id),
        "contact_id": _id(contact_id),
        "direction": row.direction,
        "type": row.type,
        "text": row.text,
        "status": row.status,
        "provider_message_id": row.provider_message_id,
        "error": error,
        "created_at": _time(row.created_at),
        "sent_at": _time(row.sent_at),
        "delivered_at": _time(row.delivered_at),
        "read_at": _time(row.read_at),
    }


def conversation(row: Conversation) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "channel_id": str(row.channel_id),
        "contact_id": str(row.contact_id),
        "status": row.status,
        "assignee_id": _id(row.assignee_id),
        "created_at": _time(row.created_at),
    }


def contact(row: Contact) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "opted_out": bool(row.opted_out),
        "created_at": _time(row.created_at),
        "updated_at": _time(row.updated_at),
    }


def message_event(row: Message, contact_id: uuid.UUID | None) -> dict[str, Any]:
    return {"message": message(row, contact_id)}


def conversation_event(row: Conversation, **extra: Any) -> dict[str, Any]:
    return {"conversation": conversation(row), **extra}


def contact_event(row: Contact, changed: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"contact": contact(row)}
    if changed is not None:
        data["changed"] = sorted(changed)
    return data


def bot_handoff(row: Conversation, bot_id: uuid.UUID | None, reason: str | None) -> dict[str, Any]:
    """`bot.handoff`: a bot gave the conversation to humans (emitted by the bots engine)."""
    return {"conversation": conversation(row), "bot_id": _id(bot_id), "reason": reason}


def envelope(
    event_id: uuid.UUID,
    event_type: str,
    version: int,
    workspace_id: uuid.UUID,
    created_at: datetime,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The one payload shape: the body of a webhook request and of a live message."""
    return {
        "id": str(event_id),
        "type": event_type,
        "version": version,
        "timestamp": _time(created_at),
        "workspace_id": str(workspace_id),
        "data": data,
    }
