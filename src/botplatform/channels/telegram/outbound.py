"""Normalized outbound message → one Bot API call (`POST /bot<token>/<method>`).

Text goes with `parse_mode: HTML`, our text escaped, so a customer's name or an agent's `<`
can never turn into markup (a header is the one thing we make bold). Our buttons and list
rows become an inline keyboard, one button per row, its `callback_data` the button's id: a
tap comes back as a callback query whose data is that id, as WhatsApp's button replies do.
Media goes by URL, by a Telegram `file_id`, or by upload (`upload:<media key>` from
`upload_media`, sent as multipart by the adapter).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from botplatform.channels.messages import MessageType, OutboundMessage

#: The Bot API's limits: a message's text, a media caption, a callback's data (bytes).
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_BYTES = 64
#: A media id that names a file uploaded to our storage, sent as multipart at send time.
UPLOAD_PREFIX = "upload:"
#: Our media kinds → the send method and its file field.
MEDIA_METHODS = {
    MessageType.IMAGE: ("sendPhoto", "photo"),
    MessageType.VIDEO: ("sendVideo", "video"),
    MessageType.AUDIO: ("sendAudio", "audio"),
    MessageType.DOCUMENT: ("sendDocument", "document"),
    MessageType.STICKER: ("sendSticker", "sticker"),
}
#: Our typing indicator names → sendChatAction's action ("off": Telegram's ends by itself).
CHAT_ACTIONS = {"typing_on": "typing", "typing": "typing"}


@dataclass(frozen=True)
class Call:
    """One Bot API request: its method, its JSON parameters, and (for an upload) the field
    whose file is read from our storage."""

    method: str
    params: dict[str, Any]
    upload_field: str | None = None
    upload_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def split_key(provider_message_id: str) -> tuple[str, int]:
    """`"{chat_id}:{message_id}"` (how parse and send name a message) → its two parts."""
    chat, _, message = provider_message_id.rpartition(":")
    if not chat or not message.lstrip("-").isdigit():
        raise ValueError(f"not a Telegram message id: {provider_message_id!r}")
    return chat, int(message)


def _escaped_text(message: OutboundMessage) -> str:
    parts = []
    if message.header:
        parts.append(f"<b>{html.escape(message.header)}</b>")
    if message.content.text:
        parts.append(html.escape(message.content.text))
    if message.footer:
        parts.append(f"<i>{html.escape(message.footer)}</i>")
    text = "\n\n".join(parts)
    if len(text) > TEXT_LIMIT:
        raise ValueError(f"Telegram takes at most {TEXT_LIMIT} characters of text")
    return text


def _callback_data(value: str) -> str:
    if len(value.encode()) > CALLBACK_DATA_BYTES:
        raise ValueError(
            f"Telegram button ids are at most {CALLBACK_DATA_BYTES} bytes: {value[:20]!r}…"
        )
    return value


def _keyboard(message: OutboundMessage) -> dict[str, Any] | None:
    rows: list[list[dict[str, str]]] = [
        [{"text": b.title, "callback_data": _callback_data(b.id)}] for b in message.buttons
    ]
    for section in message.sections:
        for row in section.rows:
            title = f"{row.title} · {row.description}" if row.description else row.title
            rows.append([{"text": title, "callback_data": _callback_data(row.id)}])
    return {"inline_keyboard": rows} if rows else None


def _base(message: OutboundMessage) -> dict[str, Any]:
    params: dict[str, Any] = {"chat_id": message.recipient_id}
    if message.reply_to:
        try:
            _chat, reply_id = split_key(message.reply_to)
        except ValueError:
            pass  # a reply to something that is not a Telegram message: sent as a new one
        else:
            params["reply_parameters"] = {
                "message_id": reply_id,
                "allow_sending_without_reply": True,
            }
    return params


def _text(message: OutboundMessage) -> Call:
    params = _base(message)
    params.update(
        text=_escaped_text(message),
        parse_mode="HTML",
        link_preview_options={"is_disabled": not message.preview_url},
    )
    keyboard = _keyboard(message)
    if keyboard:
        params["reply_markup"] = keyboard
    return Call("sendMessage", params)


def _media(message: OutboundMessage) -> Call:
    media = message.content.media
    if media is None:
        raise ValueError("a media message needs media")
    method, field_name = MEDIA_METHODS[message.content.type]
    if media.voice and message.content.type == MessageType.AUDIO:
        method, field_name = "sendVoice", "voice"
    params = _base(message)
    if media.caption and message.content.type != MessageType.STICKER:
        caption = html.escape(media.caption)
        if len(caption) > CAPTION_LIMIT:
            raise ValueError(f"Telegram takes at most {CAPTION_LIMIT} characters of caption")
        params.update(caption=caption, parse_mode="HTML")
    source = media.provider_media_id or media.url
    if not source:
        raise ValueError("the media has neither a link nor an id")
    if source.startswith(UPLOAD_PREFIX):
        return Call(
            method, params, upload_field=field_name, upload_key=source[len(UPLOAD_PREFIX) :]
        )
    params[field_name] = source  # a URL Telegram fetches, or a file_id it already has
    return Call(method, params)


def _location(message: OutboundMessage) -> Call:
    where = message.content.location or {}
    params = _base(message)
    params.update(latitude=where.get("latitude"), longitude=where.get("longitude"))
    if where.get("name") or where.get("address"):
        params.update(title=where.get("name") or "", address=where.get("address") or "")
        return Call("sendVenue", params)
    return Call("sendLocation", params)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _contact(message: OutboundMessage) -> Call:
    cards = message.content.contacts or []
    card: dict[str, Any] = cards[0] if cards and isinstance(cards[0], dict) else {}
    name = _mapping(card.get("name"))
    phones = card.get("phones")
    phone = next(
        (_mapping(p).get("phone") for p in phones if _mapping(p).get("phone"))
        if isinstance(phones, list)
        else iter(()),
        None,
    )
    if not phone:
        raise ValueError("Telegram shares a contact by its phone number: none given")
    params = _base(message)
    params.update(
        phone_number=phone,
        first_name=name.get("first_name") or name.get("formatted_name") or phone,
    )
    if name.get("last_name"):
        params["last_name"] = name["last_name"]
    return Call("sendContact", params)


def _reaction(message: OutboundMessage) -> Call:
    reaction = message.content.reaction
    if reaction is None:
        raise ValueError("a reaction needs the message it reacts to")
    chat, message_id = split_key(reaction.message_id)
    emoji = [{"type": "emoji", "emoji": reaction.emoji}] if reaction.emoji else []
    return Call(
        "setMessageReaction", {"chat_id": chat, "message_id": message_id, "reaction": emoji}
    )


def _edit(message: OutboundMessage, target: str) -> Call:
    chat, message_id = split_key(target)
    params: dict[str, Any] = {
        "chat_id": chat,
        "message_id": message_id,
        "text": _escaped_text(message),
        "parse_mode": "HTML",
    }
    keyboard = _keyboard(message)
    if keyboard:
        params["reply_markup"] = keyboard
    return Call("editMessageText", params)


def call_for(message: OutboundMessage) -> Call | None:
    """The request for a message; None for what Telegram has no call for (a bot cannot mark
    a message read, and a typing indicator ends by itself)."""
    if message.mark_read:
        return None
    if message.sender_action:
        action = CHAT_ACTIONS.get(message.sender_action)
        if action is None:
            return None
        return Call("sendChatAction", {"chat_id": message.recipient_id, "action": action})
    if message.edit_of:
        return _edit(message, message.edit_of)
    kind = message.content.type
    if kind in (MessageType.TEXT, MessageType.INTERACTIVE):
        return _text(message)
    if kind in MEDIA_METHODS:
        return _media(message)
    if kind == MessageType.LOCATION:
        return _location(message)
    if kind == MessageType.CONTACTS:
        return _contact(message)
    if kind == MessageType.REACTION:
        return _reaction(message)
    raise ValueError(f"Telegram cannot send a {kind}")
