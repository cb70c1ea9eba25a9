"""Normalized outbound message → the Send API's JSON body (`POST /{version}/me/messages`).

Our buttons become a button template on Messenger (postback buttons; quick replies on
Instagram, which shows no button template), lists a generic template (one card per row, each
with its choice as a postback button). A tap comes back as a postback or quick reply whose
payload is the button's id, as WhatsApp's button replies do."""

from __future__ import annotations

from typing import Any

from botplatform.channels.messages import MessageType, OutboundMessage

ATTACHMENT_TYPES = {
    MessageType.IMAGE: "image",
    MessageType.STICKER: "image",
    MessageType.VIDEO: "video",
    MessageType.AUDIO: "audio",
    MessageType.DOCUMENT: "file",
}
#: The Send API's text limit (characters) and a quick reply's or button's title limit.
TEXT_LIMIT = 2000
TITLE_LIMIT = 20
#: Messenger's reaction names for the emoji it knows; others are sent as given.
REACTIONS = {"❤️": "love", "❤": "love", "😆": "smile", "😮": "wow", "😢": "sad", "😠": "angry",
             "👍": "like", "👎": "dislike"}  # fmt: skip


def _media(message: OutboundMessage) -> dict[str, Any]:
    media = message.content.media
    if media is None:
        raise ValueError("a media message needs media")
    payload: dict[str, Any] = (
        {"attachment_id": media.provider_media_id}
        if media.provider_media_id
        else {"url": media.url, "is_reusable": True}
    )
    kind = ATTACHMENT_TYPES[message.content.type]
    return {"attachment": {"type": kind, "payload": payload}}


def _text_of(message: OutboundMessage) -> str:
    parts = [message.header, message.content.text, message.footer]
    return "\n\n".join(p for p in parts if p)[:TEXT_LIMIT]


def _buttons(message: OutboundMessage, instagram: bool) -> dict[str, Any]:
    if instagram:
        return {
            "text": _text_of(message),
            "quick_replies": [
                {"content_type": "text", "title": b.title[:TITLE_LIMIT], "payload": b.id}
                for b in message.buttons
            ],
        }
    template = {
        "template_type": "button",
        "text": _text_of(message)[:640],
        "buttons": [
            {"type": "postback", "title": b.title[:TITLE_LIMIT], "payload": b.id}
            for b in message.buttons
        ],
    }
    return {"attachment": {"type": "template", "payload": template}}


def _list(message: OutboundMessage) -> dict[str, Any]:
    elements = [
        {
            "title": row.title[:80],
            **({"subtitle": row.description[:80]} if row.description else {}),
            "buttons": [
                {
                    "type": "postback",
                    "title": (message.list_button or "Choose")[:TITLE_LIMIT],
                    "payload": row.id,
                }
            ],
        }
        for section in message.sections
        for row in section.rows
    ][:10]
    payload = {"template_type": "generic", "elements": elements}
    return {"attachment": {"type": "template", "payload": payload}}


def _message(message: OutboundMessage, instagram: bool) -> dict[str, Any]:
    content = message.content
    if content.type == MessageType.TEXT:
        return {"text": (content.text or "")[:TEXT_LIMIT]}
    if content.type in ATTACHMENT_TYPES:
        return _media(message)
    if content.type == MessageType.INTERACTIVE:
        return _list(message) if message.sections else _buttons(message, instagram)
    if content.type == MessageType.LOCATION and content.location:
        where = content.location
        link = f"https://maps.google.com/?q={where.get('latitude')},{where.get('longitude')}"
        parts = [where.get("name"), where.get("address"), link]
        return {"text": "\n".join(str(p) for p in parts if p)}
    raise ValueError(f"{'Instagram' if instagram else 'Messenger'} cannot send a {content.type}")


def send_body(message: OutboundMessage, *, instagram: bool = False) -> dict[str, Any]:
    recipient = {"id": message.recipient_id}
    if message.mark_read:
        return {"recipient": recipient, "sender_action": "mark_seen"}
    if message.sender_action:
        return {"recipient": recipient, "sender_action": message.sender_action}
    reaction = message.content.reaction
    if message.content.type == MessageType.REACTION and reaction is not None:
        return {
            "recipient": recipient,
            "sender_action": "react" if reaction.emoji else "unreact",
            "payload": {
                "message_id": reaction.message_id,
                "reaction": REACTIONS.get(reaction.emoji, reaction.emoji or "love"),
            },
        }
    body: dict[str, Any] = {
        "recipient": recipient,
        "messaging_type": "MESSAGE_TAG" if message.tag else "RESPONSE",
        "message": _message(message, instagram),
    }
    if message.tag:
        body["tag"] = message.tag
    if message.reply_to:
        body["message"]["reply_to"] = {"mid": message.reply_to}
    if message.callback_data:
        body["message"]["metadata"] = message.callback_data  # echoed back: our row's id
    return body
