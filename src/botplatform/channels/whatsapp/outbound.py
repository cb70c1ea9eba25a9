"""Normalized outbound message → the Graph API's JSON body."""

from __future__ import annotations

from typing import Any

from botplatform.channels.messages import MEDIA_TYPES, Content, MessageType, OutboundMessage


def _media(content: Content) -> dict[str, Any]:
    media = content.media
    if media is None:
        raise ValueError("a media message needs media")
    body: dict[str, Any] = (
        {"id": media.provider_media_id} if media.provider_media_id else {"link": media.url}
    )
    if media.caption and content.type in {
        MessageType.IMAGE,
        MessageType.VIDEO,
        MessageType.DOCUMENT,
    }:
        body["caption"] = media.caption
    if media.filename and content.type == MessageType.DOCUMENT:
        body["filename"] = media.filename
    return body


def _interactive(message: OutboundMessage) -> dict[str, Any]:
    body: dict[str, Any] = {"body": {"text": message.content.text or ""}}
    if message.header:
        body["header"] = {"type": "text", "text": message.header}
    if message.footer:
        body["footer"] = {"text": message.footer}
    if message.sections:
        body["type"] = "list"
        body["action"] = {
            "button": message.list_button or "Choose",
            "sections": [
                {
                    "title": section.title,
                    "rows": [
                        {
                            "id": row.id,
                            "title": row.title,
                            **({"description": row.description} if row.description else {}),
                        }
                        for row in section.rows
                    ],
                }
                for section in message.sections
            ],
        }
    else:
        body["type"] = "button"
        body["action"] = {
            "buttons": [
                {"type": "reply", "reply": {"id": button.id, "title": button.title}}
                for button in message.buttons
            ]
        }
    return body


def _typed_body(message: OutboundMessage) -> dict[str, Any]:
    content = message.content
    kind = content.type
    if kind == MessageType.TEXT:
        return {"text": {"body": content.text or "", "preview_url": message.preview_url}}
    if kind in MEDIA_TYPES:
        return {kind.value: _media(content)}
    if kind == MessageType.LOCATION:
        return {"location": content.location or {}}
    if kind == MessageType.CONTACTS:
        return {"contacts": content.contacts or []}
    if kind == MessageType.TEMPLATE and message.template is not None:
        template = message.template
        return {
            "template": {
                "name": template.name,
                "language": {"code": template.language},
                "components": list(template.components),
            }
        }
    if kind == MessageType.INTERACTIVE:
        return {"interactive": _interactive(message)}
    if kind == MessageType.REACTION and content.reaction is not None:
        return {
            "reaction": {"message_id": content.reaction.message_id, "emoji": content.reaction.emoji}
        }
    raise ValueError(f"WhatsApp cannot send a {kind} message")


def graph_body(message: OutboundMessage) -> dict[str, Any]:
    if message.mark_read:
        return {"messaging_product": "whatsapp", "status": "read", "message_id": message.mark_read}
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.recipient_id,
        "type": message.content.type.value,
        **_typed_body(message),
    }
    if message.reply_to:
        body["context"] = {"message_id": message.reply_to}
    if message.callback_data:
        body["biz_opaque_callback_data"] = message.callback_data
    return body
